//! `--plot FILE`: a hand-written SVG with three panels over replay time (net delta after
//! hedging with the band, hedge position in underlying units, cumulative hedge cost), one
//! line per policy, for every underlying. No plotting dependency.

use std::fmt::Write as _;

use super::report::Report;

const W: f64 = 900.0;
const PANEL_H: f64 = 200.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const GAP: f64 = 45.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#7f7f7f", "#17becf",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One line: label, colour index, dashed, points.
type Line = (String, usize, bool, Vec<(f64, f64)>);

struct Panel<'a> {
    title: String,
    lines: Vec<Line>,
    _p: std::marker::PhantomData<&'a ()>,
}

/// The panel's axis ranges `(x_lo, x_hi, y_lo, y_hi)`: its finite points' extent, never
/// empty, the y range padded by 5% each way.
fn bounds(p: &Panel<'_>) -> (f64, f64, f64, f64) {
    let pts = p.lines.iter().flat_map(|l| l.3.iter());
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        if x.is_finite() && y.is_finite() {
            x_lo = x_lo.min(x);
            x_hi = x_hi.max(x);
            y_lo = y_lo.min(y);
            y_hi = y_hi.max(y);
        }
    }
    if x_lo > x_hi {
        (x_lo, x_hi, y_lo, y_hi) = (0.0, 1.0, 0.0, 1.0);
    }
    if x_hi - x_lo < 1e-12 {
        x_hi = x_lo + 1.0;
    }
    if y_hi - y_lo < 1e-12 {
        y_lo -= 1.0;
        y_hi += 1.0;
    }
    let pad = 0.05 * (y_hi - y_lo);
    (x_lo, x_hi, y_lo - pad, y_hi + pad)
}

fn draw(out: &mut String, y0: f64, p: &Panel<'_>) {
    let (x_lo, x_hi, y_lo, y_hi) = bounds(p);
    let pw = W - LEFT - RIGHT;
    let sx = |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo) * pw;
    let sy = |y: f64| y0 + PANEL_H - (y - y_lo) / (y_hi - y_lo) * PANEL_H;
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{y0}" width="{pw}" height="{PANEL_H}" fill="none" stroke="#999"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{:.1}" font-size="13" font-weight="bold">{}</text>"#,
        y0 - 6.0,
        esc(&p.title)
    );
    for k in 0..=4 {
        let v = y_lo + (y_hi - y_lo) * k as f64 / 4.0;
        let y = sy(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            y + 3.0,
            fmt_num(v)
        );
        let xv = x_lo + (x_hi - x_lo) * k as f64 / 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{:.0} s</text>"#,
            sx(xv),
            y0 + PANEL_H + 12.0,
            xv
        );
    }
    if y_lo < 0.0 && y_hi > 0.0 {
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#888"/>"##,
            sy(0.0),
            W - RIGHT
        );
    }
    for (label, c, dashed, points) in &p.lines {
        let mut d = String::new();
        for (i, &(x, y)) in points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                sx(x),
                sy(y)
            );
        }
        let dash = if *dashed {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.3"{dash}><title>{}</title></path>"#,
            COLORS[c % COLORS.len()],
            esc(label)
        );
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1e4 || (v != 0.0 && v.abs() < 1e-2) {
        format!("{v:.2e}")
    } else {
        format!("{v:.2}")
    }
}

/// Every underlying of any policy, in the order first seen.
fn underlying_names(r: &Report) -> Vec<&String> {
    let mut names: Vec<&String> = Vec::new();
    for p in &r.policies {
        for n in p.underlyings.keys() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

/// Renders the report's time series.
pub fn svg(r: &Report) -> String {
    let mut panels = Vec::new();
    for name in underlying_names(r) {
        let mut net = Vec::new();
        let mut pos = Vec::new();
        let mut cost = Vec::new();
        for (i, p) in r.policies.iter().enumerate() {
            let Some(u) = p.underlyings.get(name) else {
                continue;
            };
            let s = &u.series;
            let zip = |v: &Vec<f64>| {
                s.t_s
                    .iter()
                    .copied()
                    .zip(v.iter().copied())
                    .collect::<Vec<_>>()
            };
            net.push((
                format!("{} net delta", p.policy),
                i,
                false,
                zip(&s.net_delta_after_hedging),
            ));
            net.push((format!("{} band", p.policy), i, true, zip(&s.band)));
            net.push((
                format!("{} -band", p.policy),
                i,
                true,
                s.t_s
                    .iter()
                    .copied()
                    .zip(s.band.iter().map(|b| -b))
                    .collect(),
            ));
            pos.push((format!("{} hedge", p.policy), i, false, zip(&s.hedge_delta)));
            cost.push((format!("{} cost", p.policy), i, false, zip(&s.pnl_costs)));
        }
        let mk = |title: String, lines| Panel {
            title,
            lines,
            _p: std::marker::PhantomData,
        };
        panels.push(mk(
            format!("{name}: net delta after hedging (dashed: band), underlying units"),
            net,
        ));
        panels.push(mk(format!("{name}: hedge position, underlying units"), pos));
        panels.push(mk(
            format!("{name}: cumulative hedge cost (fees + slippage), quote currency"),
            cost,
        ));
    }
    let legend_h = 18.0 * r.policies.len() as f64 + 10.0;
    let legend = r
        .policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                LEFT,
                LEFT + 20.0,
                TOP + 14.0 + 18.0 * i as f64,
                p.policy.as_str(),
            )
        })
        .collect::<Vec<_>>();
    let title = format!(
        "hedgectl replay: {}",
        r.inputs.get("source").map_or("", |s| s.as_str())
    );
    page(&title, &legend, legend_h, &panels)
}

/// One SVG page: a title, a legend (colour `i` for item `i`: rect x, text x, text baseline,
/// label) and the panels below it.
fn page(
    title: &str,
    legend: &[(f64, f64, f64, &str)],
    legend_h: f64,
    panels: &[Panel<'_>],
) -> String {
    let h = TOP + legend_h + panels.len() as f64 * (PANEL_H + GAP) + 10.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h:.0}" viewBox="0 0 {W} {h:.0}" font-family="sans-serif">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="20" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (i, &(rx, tx, y, label)) in legend.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<rect x="{rx:.1}" y="{:.1}" width="14" height="4" fill="{}"/><text x="{tx:.1}" y="{y:.1}" font-size="12">{}</text>"#,
            y - 5.0,
            COLORS[i % COLORS.len()],
            esc(label)
        );
    }
    for (k, p) in panels.iter().enumerate() {
        draw(
            &mut out,
            TOP + legend_h + GAP * 0.5 + k as f64 * (PANEL_H + GAP),
            p,
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The PnL attribution over time: one panel per policy and underlying, one line per part
/// (cumulative, quote currency).
pub fn attribution_svg(r: &Report) -> String {
    const PARTS: [&str; 8] = [
        "delta",
        "gamma",
        "vega",
        "theta",
        "coin+basis",
        "costs",
        "residual",
        "total",
    ];
    let mut panels = Vec::new();
    for p in &r.policies {
        for (name, u) in &p.underlyings {
            let s = &u.series;
            let cols = [
                &s.attr_delta,
                &s.attr_gamma,
                &s.attr_vega,
                &s.attr_theta,
                &s.attr_basis,
                &s.attr_costs,
                &s.attr_residual,
                &s.pnl_total,
            ];
            let lines = cols
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let pts = s.t_s.iter().copied().zip(v.iter().copied()).collect();
                    (PARTS[i].to_string(), i, PARTS[i] == "total", pts)
                })
                .collect();
            panels.push(Panel {
                title: format!(
                    "{} / {name}: PnL by cause, cumulative, quote currency",
                    p.policy
                ),
                lines,
                _p: std::marker::PhantomData,
            });
        }
    }
    let legend = PARTS
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let x = LEFT + 95.0 * i as f64;
            (x, x + 18.0, TOP + 14.0, *part)
        })
        .collect::<Vec<_>>();
    let title = format!(
        "PnL attribution: {}",
        r.inputs.get("source").map_or("", |s| s.as_str())
    );
    page(&title, &legend, 28.0, &panels)
}

/// Writes a plot to `path`: the SVG itself, or, when `path` ends in `.png`, the SVG rasterized
/// (resvg, text in the system's fonts; without any font the PNG has no text, and this says so
/// on stderr).
///
/// # Errors
/// The file cannot be written, or the SVG does not render.
pub fn write_plot(path: &std::path::Path, svg: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let bytes = if is_png {
        png(svg)?
    } else {
        svg.as_bytes().to_vec()
    };
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// The SVG rasterized to PNG at 2 pixels per SVG unit, on a white background.
fn png(svg: &str) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use resvg::{tiny_skia, usvg};
    let mut opt = usvg::Options::default();
    opt.fontdb_mut().load_system_fonts();
    // The plots ask for `sans-serif`, which usvg maps to Arial: take the system's first sans
    // family instead (DejaVu Sans, Liberation Sans, ...), else any family.
    let family = {
        let families = || {
            opt.fontdb
                .faces()
                .flat_map(|f| f.families.iter().map(|(n, _)| n))
        };
        families()
            .find(|n| n.contains("Sans") && !n.contains("Mono"))
            .or_else(|| families().next())
            .cloned()
    };
    match family {
        Some(f) => {
            opt.fontdb_mut().set_sans_serif_family(f.clone());
            opt.font_family = f;
        }
        None => eprintln!("hedgectl: no system fonts found: the PNG plot has no text (install a font package such as fonts-dejavu-core, or write .svg)"),
    }
    let tree = usvg::Tree::from_str(svg, &opt).context("the plot's SVG does not parse")?;
    let scale = 2.0;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(scale)
        .context("empty plot")?;
    let mut pixmap =
        tiny_skia::Pixmap::new(size.width(), size.height()).context("plot too large")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().context("PNG encoding failed")
}
