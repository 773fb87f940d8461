#!/usr/bin/env python3
"""Reference prices and Greeks from QuantLib for pricing/tests/quantlib.rs.

Run through scripts/gen-quantlib-reference.sh (creates the virtual environment).

QuantLib's BlackCalculator is used for both models with continuous time to expiry (no day
counting): for BSM, forward = S exp((r - q) T) and discount = exp(-r T), Greeks taken with
respect to the spot S; for Black-76, the "spot" is the forward itself (so the forward does
not drift) and discount = exp(-r T).

Conventions written (the engine's): price in the quote currency; delta = dV/dS (BSM) or
dV/dF (Black-76, discounted forward delta); gamma = d2V/dS2; vega per 1.00 of vol
(QuantLib's vega(T)); theta = dV/dt per year with the underlying held fixed
(QuantLib's theta(spot, T)).
"""
import math
import random
import sys

import QuantLib as ql

HOUR = 1.0 / (365.0 * 24.0)
TENORS = [HOUR, 6 * HOUR, 1.0 / 365, 7.0 / 365, 30.0 / 365, 0.25, 0.5, 1.0, 2.0, 3.0]
VOLS = [0.05, 0.1, 0.2, 0.35, 0.5, 0.8, 1.2, 2.0, 3.0]


def greeks(model, kind, s, k, t, vol, r, q):
    if model == "black76":
        fwd = s
    else:
        fwd = s * math.exp((r - q) * t)
    df = math.exp(-r * t)
    std = vol * math.sqrt(t)
    otype = ql.Option.Call if kind == "call" else ql.Option.Put
    bc = ql.BlackCalculator(ql.PlainVanillaPayoff(otype, k), fwd, std, df)
    return (bc.value(), bc.delta(s), bc.gamma(s), bc.vega(t), bc.theta(s, t))


def main():
    rng = random.Random(20261124)
    rows = []
    # A grid over tenor x vol x moneyness (in standard deviations, up to +-8: deep ITM/OTM).
    for model in ("bsm", "black76"):
        for t in TENORS:
            for vol in VOLS:
                for z in (-8.0, -3.0, -1.0, 0.0, 0.7, 2.5, 6.0):
                    kind = rng.choice(["call", "put"])
                    s = rng.choice([100.0, 100.0, 9000.0, 1.5])
                    r = rng.choice([0.0, 0.0, 0.01, 0.05, -0.005])
                    q = 0.0 if model == "black76" else rng.choice([0.0, 0.02, 0.04])
                    fwd = s if model == "black76" else s * math.exp((r - q) * t)
                    k = fwd * math.exp(z * vol * math.sqrt(t))
                    k = float(f"{k:.6g}")
                    rows.append((model, kind, s, k, t, vol, r, q))
    # Random cases, including extreme strikes.
    for _ in range(300):
        model = rng.choice(["bsm", "black76"])
        kind = rng.choice(["call", "put"])
        s = float(f"{math.exp(rng.uniform(math.log(0.5), math.log(50000))):.6g}")
        t = math.exp(rng.uniform(math.log(HOUR), math.log(3.0)))
        vol = math.exp(rng.uniform(math.log(0.05), math.log(3.0)))
        r = rng.uniform(-0.01, 0.08)
        q = 0.0 if model == "black76" else rng.uniform(0.0, 0.06)
        k = float(f"{s * math.exp(rng.uniform(-2.5, 2.5)):.6g}")
        rows.append((model, kind, s, k, t, vol, r, q))
    out = sys.stdout
    out.write("model,type,underlying,strike,t_years,vol,rate,div,price,delta,gamma,vega,theta\n")
    for model, kind, s, k, t, vol, r, q in rows:
        vals = greeks(model, kind, s, k, t, vol, r, q)
        fields = [model, kind] + [repr(x) for x in (s, k, t, vol, r, q) + vals]
        out.write(",".join(fields) + "\n")
    sys.stderr.write(f"QuantLib {ql.__version__}\n")


if __name__ == "__main__":
    main()
