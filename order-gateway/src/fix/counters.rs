//! The FIX venue's counters (session, decoder, application), declared once: the gateway
//! registers them in `cnc-gateway` beside its own ([`crate::venue::Venue::for_each_counter`]).

use super::codec::DecodeError;
use shm_layout::counter_schema::CounterDef as D;

/// `reason` values of `fix_decode_errors`: [`DecodeError::LABELS`] without their
/// `fix_decode_` prefix, by [`DecodeError::index`] (checked by a test).
pub const DECODE_REASONS: [&str; DecodeError::COUNT] = [
    "incomplete",
    "bad_begin_string",
    "bad_body_length",
    "body_too_long",
    "bad_trailer",
    "bad_checksum_field",
    "checksum_mismatch",
    "malformed_field",
    "empty_value",
    "too_many_fields",
    "duplicate_tag",
    "msg_type_not_first",
    "missing_tag",
    "not_numeric",
];

shm_layout::counter_schema! {
    /// Every counter of the FIX venue.
    pub enum FixCounter {
        /// Messages in.
        MsgsIn = D::counter("fix_msgs_in", "messages", "FIX messages received"),
        /// Messages out.
        MsgsOut = D::counter("fix_msgs_out", "messages", "FIX messages sent"),
        /// Decode rejects.
        DecodeRejected = D::counter("fix_decode_rejected", "messages", "Inbound FIX messages that did not decode"),
        /// Decode rejects by reason.
        DecodeErrors = D::counter("fix_decode_errors", "messages", "Inbound FIX messages that did not decode, by reason")
            .by("reason", &DECODE_REASONS),
        /// Connect attempts.
        ConnectAttempts = D::counter("fix_connect_attempts", "attempts", "TCP connects to the counterparty"),
        /// Connect failures.
        ConnectFailures = D::counter("fix_connect_failures", "attempts", "TCP connects that failed"),
        /// Logons.
        Logons = D::counter("fix_logons", "logons", "Sessions logged on"),
        /// Disconnects.
        Disconnects = D::counter("fix_disconnects", "disconnects", "Sessions lost or closed"),
        /// Resend requests sent.
        ResendRequestsSent = D::counter("fix_resend_requests_sent", "messages", "ResendRequests sent (inbound gap)"),
        /// Resend requests received.
        ResendRequestsReceived = D::counter("fix_resend_requests_received", "messages", "ResendRequests received"),
        /// Gap fills sent.
        GapFillsSent = D::counter("fix_gap_fills_sent", "messages", "SequenceReset-GapFill sent"),
        /// Sequence resets.
        SequenceResetsReceived = D::counter("fix_sequence_resets_received", "messages", "SequenceResets received"),
        /// Duplicates.
        DuplicatesIgnored = D::counter("fix_duplicates_ignored", "messages", "Possible duplicates already seen, ignored"),
        /// Out of order.
        OutOfOrderDropped = D::counter("fix_out_of_order_dropped", "messages", "Messages ahead of a gap, dropped until resent"),
        /// Sequence too low.
        SeqTooLow = D::counter("fix_seq_too_low", "messages", "Messages with a sequence number too low (session ended)"),
        /// Wrong comp id.
        WrongCompId = D::counter("fix_wrong_comp_id", "messages", "Messages with the wrong SenderCompID/TargetCompID"),
        /// Test requests.
        TestRequestsSent = D::counter("fix_test_requests_sent", "messages", "TestRequests sent (counterparty silent)"),
        /// Logouts received.
        LogoutsReceived = D::counter("fix_logouts_received", "messages", "Logouts received"),
        /// Send overflows.
        SendOverflows = D::counter("fix_send_overflows", "messages", "Sends refused: outbound buffer full"),
        /// Store errors.
        StoreErrors = D::counter("fix_store_errors", "errors", "Message store I/O errors"),
        /// Orders sent.
        OrdersSent = D::counter("fix_orders_sent", "orders", "NewOrderSingle sent"),
        /// Cancels sent.
        CancelsSent = D::counter("fix_cancels_sent", "requests", "OrderCancelRequest sent"),
        /// Exec reports.
        ExecReports = D::counter("fix_exec_reports", "messages", "ExecutionReports received"),
        /// Venue rejects.
        VenueRejects = D::counter("fix_venue_rejects", "orders", "Orders the counterparty rejected"),
        /// Business rejects.
        BusinessRejects = D::counter("fix_business_rejects", "messages", "BusinessMessageRejects received"),
        /// Session rejects.
        SessionRejects = D::counter("fix_session_rejects", "messages", "Session-level Rejects received"),
        /// Cancel rejects.
        CancelRejects = D::counter("fix_cancel_rejects", "messages", "OrderCancelRejects received"),
        /// Local rejects.
        LocalRejects = D::counter("fix_local_rejects", "orders", "Orders rejected locally (session down, not encodable)"),
        /// Gap-filled orders.
        GapFilledOrders = D::counter("fix_gap_filled_orders", "orders", "Orders lost in a counterparty gap fill"),
        /// Unknown order reports.
        UnknownOrderReports = D::counter("fix_unknown_order_reports", "messages", "ExecutionReports for unknown orders"),
        /// Malformed app messages.
        MalformedAppMessages = D::counter("fix_malformed_app_messages", "messages", "Application messages missing required fields"),
        /// Recovered orders.
        RecoveredOrders = D::counter("fix_recovered_orders", "orders", "Open orders recovered after a restart"),
        /// Status requests.
        StatusRequestsSent = D::counter("fix_status_requests_sent", "messages", "OrderStatusRequests sent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reasons_follow_the_decoder_labels() {
        let labels: Vec<String> = DECODE_REASONS
            .iter()
            .map(|r| format!("fix_decode_{r}"))
            .collect();
        assert_eq!(labels, DecodeError::LABELS);
    }
}
