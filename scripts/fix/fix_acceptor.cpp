// A simple FIX 4.4 exchange on QuickFIX (Debian's libquickfix): the real counterparty that
// order-gateway/tests/fix_quickfix.rs and bench/src/bin/fix_bench.rs drive the FixVenue against.
//
// Built by scripts/setup-quickfix.sh. Usage:
//   fix_acceptor --port N --store DIR [--spec scripts/fix/FIX44.xml] [--sender EXCH]
//                [--target HEDGER] [--username U --password P] [--reject-qty 1000]
//                [--partial-qty 100] [--reject-price 13.13]
// Prints "READY <port>" on stdout once listening; stops on SIGTERM/SIGINT, or on EOF of stdin
// when stdin is a pipe.
//
// Exchange rules (IOC orders):
//   - Symbol "UNKNOWN"                      -> BusinessMessageReject (35=j), reason 2
//   - OrderQty > reject-qty                 -> ExecutionReport Rejected "qty above limit"
//   - Price == reject-price                 -> ExecutionReport Rejected "magic reject price"
//   - otherwise New ack, then a fill at the limit price (market orders at 100):
//       qty <= partial-qty: one full fill;
//       qty  > partial-qty: fill partial-qty, then the IOC remainder Canceled.
//   - TimeInForce GTC (1): New ack only, the order rests until cancelled
//   - OrderCancelRequest: a resting order -> ExecutionReport Canceled (OrigClOrdID set);
//     otherwise OrderCancelReject (IOC orders are already done)
//   - OrderStatusRequest -> ExecutionReport ExecType=I with the order's state (unknown order:
//     OrdStatus=8, OrdRejReason=5)
// Session state (sequence numbers) lives in a QuickFIX FileStore under --store, so it
// survives restarts of either side.
//
// Listens on 127.0.0.1 only. QuickFIX 1.15 (Debian's) has no setting for the accept address and
// binds INADDR_ANY; this executable defines `bind`, which the dynamic linker resolves
// libquickfix's calls to (a definition in the executable comes first), and rewrites a wildcard
// IPv4 address to loopback before making the system call.
#include <quickfix/Application.h>
#include <quickfix/FileLog.h>
#include <quickfix/FileStore.h>
#include <quickfix/MessageCracker.h>
#include <quickfix/Session.h>
#include <quickfix/SessionSettings.h>
#include <quickfix/SocketAcceptor.h>
#include <quickfix/fix44/BusinessMessageReject.h>
#include <quickfix/fix44/ExecutionReport.h>
#include <quickfix/fix44/Logon.h>
#include <quickfix/fix44/NewOrderSingle.h>
#include <quickfix/fix44/OrderCancelReject.h>
#include <quickfix/fix44/OrderCancelRequest.h>
#include <quickfix/fix44/OrderStatusRequest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <poll.h>
#include <sys/stat.h>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>

extern "C" int bind(int fd, const struct sockaddr* addr, socklen_t len) {
  struct sockaddr_in lo;
  if (addr != nullptr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof lo) {
    std::memcpy(&lo, addr, sizeof lo);
    if (lo.sin_addr.s_addr == htonl(INADDR_ANY)) {
      lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      return (int)::syscall(SYS_bind, fd, (const struct sockaddr*)&lo, (socklen_t)sizeof lo);
    }
  }
  return (int)::syscall(SYS_bind, fd, addr, len);
}

static std::atomic<bool> g_stop{false};
static void on_signal(int) { g_stop = true; }

struct Options {
  int port = 0;
  std::string store, spec, sender = "EXCH", target = "HEDGER", username, password;
  double reject_qty = 1000, partial_qty = 100, reject_price = 13.13;
};

struct OrderState {
  std::string symbol;
  char side = '1';
  double qty = 0, cum = 0, avg = 0;
  char status = '0';
};

class Exchange : public FIX::Application, public FIX::MessageCracker {
 public:
  explicit Exchange(const Options& o) : opt_(o) {
    exec_seq_ = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  }
  void onCreate(const FIX::SessionID&) override {}
  void onLogon(const FIX::SessionID& s) override { std::cerr << "logon " << s << std::endl; }
  void onLogout(const FIX::SessionID& s) override { std::cerr << "logout " << s << std::endl; }
  void toAdmin(FIX::Message&, const FIX::SessionID&) override {}
  void toApp(FIX::Message&, const FIX::SessionID&) throw(FIX::DoNotSend) override {}
  void fromAdmin(const FIX::Message& m, const FIX::SessionID&)
      throw(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
             FIX::RejectLogon) override {
    FIX::MsgType t;
    m.getHeader().getField(t);
    if (t != FIX::MsgType_Logon || opt_.username.empty()) return;
    FIX::Username u;
    FIX::Password p;
    if (!m.isSetField(u) || !m.isSetField(p)) throw FIX::RejectLogon("credentials required");
    m.getField(u);
    m.getField(p);
    if (u.getValue() != opt_.username || p.getValue() != opt_.password)
      throw FIX::RejectLogon("bad credentials");
  }
  void fromApp(const FIX::Message& m, const FIX::SessionID& s)
      throw(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
             FIX::UnsupportedMessageType) override {
    crack(m, s);
  }

  void onMessage(const FIX44::NewOrderSingle& m, const FIX::SessionID& s) override {
    FIX::ClOrdID id;
    FIX::Symbol sym;
    FIX::Side side;
    FIX::OrderQty qty;
    FIX::OrdType type;
    FIX::MsgSeqNum seq;
    m.get(id);
    m.get(sym);
    m.get(side);
    m.get(qty);
    m.get(type);
    m.getHeader().getField(seq);
    double px = 100.0;
    if (type == FIX::OrdType_LIMIT) {
      FIX::Price p;
      m.get(p);
      px = p;
    }
    if (sym.getValue() == "UNKNOWN") {
      FIX44::BusinessMessageReject r(FIX::RefMsgType("D"),
                                     FIX::BusinessRejectReason(2));  // unknown security
      r.set(FIX::RefSeqNum(seq));
      r.set(FIX::BusinessRejectRefID(id));
      r.set(FIX::Text("unknown symbol"));
      send(r, s);
      return;
    }
    OrderState& o = orders_[id.getValue()];
    o.symbol = sym;
    o.side = side;
    o.qty = qty;
    if (qty > opt_.reject_qty || px == opt_.reject_price) {
      o.status = '8';
      report(s, id, o, FIX::ExecType_REJECTED, 0, 0,
             qty > opt_.reject_qty ? "qty above limit" : "magic reject price");
      return;
    }
    o.status = '0';
    report(s, id, o, FIX::ExecType_NEW, 0, 0, "");
    FIX::TimeInForce tif(FIX::TimeInForce_DAY);
    if (m.isSetField(tif)) m.get(tif);
    if (tif == FIX::TimeInForce_GOOD_TILL_CANCEL) return;  // rests until cancelled
    double fill = qty > opt_.partial_qty ? opt_.partial_qty : double(qty);
    o.cum = fill;
    o.avg = px;
    o.status = fill < qty ? '1' : '2';
    report(s, id, o, FIX::ExecType_TRADE, fill, px, "");
    if (fill < qty) {
      o.status = '4';
      report(s, id, o, FIX::ExecType_CANCELED, 0, 0, "IOC remainder");
    }
  }

  void onMessage(const FIX44::OrderCancelRequest& m, const FIX::SessionID& s) override {
    FIX::ClOrdID id;
    FIX::OrigClOrdID orig;
    m.get(id);
    m.get(orig);
    auto it = orders_.find(orig.getValue());
    if (it != orders_.end() && (it->second.status == '0' || it->second.status == '1')) {
      it->second.status = '4';
      report(s, id, it->second, FIX::ExecType_CANCELED, 0, 0, "", &orig);
      return;
    }
    FIX44::OrderCancelReject r(FIX::OrderID(it == orders_.end() ? "NONE" : orig.getValue()), id,
                               orig,
                               FIX::OrdStatus(it == orders_.end() ? '8' : it->second.status),
                               FIX::CxlRejResponseTo('1'));
    r.set(FIX::CxlRejReason(it == orders_.end() ? 1 : 0));  // unknown order / too late
    send(r, s);
  }

  void onMessage(const FIX44::OrderStatusRequest& m, const FIX::SessionID& s) override {
    FIX::ClOrdID id;
    m.get(id);
    auto it = orders_.find(id.getValue());
    if (it == orders_.end()) {
      OrderState unknown;
      unknown.status = '8';
      FIX::Side side;
      m.get(side);
      unknown.side = side;
      FIX::Symbol sym;
      m.get(sym);
      unknown.symbol = sym;
      report(s, id, unknown, FIX::ExecType_ORDER_STATUS, 0, 0, "unknown order");
    } else {
      report(s, id, it->second, FIX::ExecType_ORDER_STATUS, 0, 0, "");
    }
  }

 private:
  void report(const FIX::SessionID& s, const FIX::ClOrdID& id, const OrderState& o, char exec_type,
              double last_qty, double last_px, const std::string& text,
              const FIX::OrigClOrdID* orig = nullptr) {
    double leaves = (o.status == '0' || o.status == '1') ? o.qty - o.cum : 0.0;
    FIX44::ExecutionReport r(FIX::OrderID("O" + (orig ? orig->getValue() : id.getValue())),
                             FIX::ExecID(std::to_string(++exec_seq_)), FIX::ExecType(exec_type),
                             FIX::OrdStatus(o.status), FIX::Side(o.side), FIX::LeavesQty(leaves),
                             FIX::CumQty(o.cum), FIX::AvgPx(o.avg));
    r.set(id);
    if (orig) r.set(*orig);
    r.set(FIX::Symbol(o.symbol));
    r.set(FIX::OrderQty(o.qty));
    if (exec_type == FIX::ExecType_TRADE) {
      r.set(FIX::LastQty(last_qty));
      r.set(FIX::LastPx(last_px));
      r.set(FIX::LastLiquidityInd(2));  // removed liquidity
      // Taker fee 5 bps of notional, as an absolute amount.
      r.set(FIX::Commission(0.0005 * last_qty * last_px));
      r.set(FIX::CommType(FIX::CommType_ABSOLUTE));
    }
    if (!text.empty()) r.set(FIX::Text(text));
    if (text == "unknown order") r.set(FIX::OrdRejReason(FIX::OrdRejReason_UNKNOWN_ORDER));
    send(r, s);
  }
  static void send(FIX::Message& m, const FIX::SessionID& s) {
    try {
      FIX::Session::sendToTarget(m, s);
    } catch (const std::exception& e) {
      std::cerr << "send failed: " << e.what() << std::endl;
    }
  }
  Options opt_;
  long long exec_seq_;
  std::map<std::string, OrderState> orders_;
};

static int usage(const char* why) {
  std::cerr << "fix_acceptor: " << why
            << "\nusage: fix_acceptor --port N --store DIR [--spec FIX44.xml] [--sender EXCH]"
               " [--target HEDGER] [--username U --password P] [--reject-qty Q]"
               " [--partial-qty Q] [--reject-price P]\n";
  return 2;
}

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage(("missing value for " + a).c_str());
    std::string v = argv[++i];
    if (a == "--port") o.port = std::atoi(v.c_str());
    else if (a == "--store") o.store = v;
    else if (a == "--spec") o.spec = v;
    else if (a == "--sender") o.sender = v;
    else if (a == "--target") o.target = v;
    else if (a == "--username") o.username = v;
    else if (a == "--password") o.password = v;
    else if (a == "--reject-qty") o.reject_qty = std::atof(v.c_str());
    else if (a == "--partial-qty") o.partial_qty = std::atof(v.c_str());
    else if (a == "--reject-price") o.reject_price = std::atof(v.c_str());
    else return usage(("unknown option " + a).c_str());
  }
  if (o.port <= 0 || o.store.empty()) return usage("--port (> 0) and --store are required");
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  std::stringstream cfg;
  cfg << "[DEFAULT]\nConnectionType=acceptor\nSocketAcceptPort=" << o.port
      << "\nSocketReuseAddress=Y\nSocketNodelay=Y\nFileStorePath=" << o.store << "/store\nFileLogPath=" << o.store
      << "/log\nStartTime=00:00:00\nEndTime=00:00:00\nResetOnLogon=N\nResetOnLogout=N\n"
      << "ResetOnDisconnect=N\nPersistMessages=Y\nValidateUserDefinedFields=N\n"
      << (o.spec.empty() ? std::string("UseDataDictionary=N\n")
                         : "UseDataDictionary=Y\nDataDictionary=" + o.spec + "\n")
      << "[SESSION]\nBeginString=FIX.4.4\nSenderCompID=" << o.sender
      << "\nTargetCompID=" << o.target << "\n";
  try {
    FIX::SessionSettings settings(cfg);
    Exchange app(o);
    FIX::FileStoreFactory store(settings);
    FIX::FileLogFactory log(settings);
    FIX::SocketAcceptor acceptor(app, store, settings, log);
    acceptor.start();
    std::cout << "READY " << o.port << std::endl;
    // Stop on a signal, or when the parent closes our stdin if it is a pipe (a test that dies
    // takes us along); started from a shell or with stdin on /dev/null, only a signal stops us.
    struct stat st;
    bool watch_stdin = ::fstat(0, &st) == 0 && S_ISFIFO(st.st_mode);
    while (!g_stop) {
      struct pollfd p = {0, POLLIN, 0};
      int r = ::poll(&p, watch_stdin ? 1 : 0, 100);
      if (r > 0) {
        char buf[64];
        if (::read(0, buf, sizeof buf) <= 0) break;
      }
    }
    acceptor.stop();
  } catch (const std::exception& e) {
    std::cerr << "fix_acceptor: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
