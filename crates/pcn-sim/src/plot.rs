//! The sweep chart: success ratio against channel size (log scale), one line per scheme,
//! the paper's points as hollow markers, and the target as a dashed line. Returns SVG text;
//! writing it is the caller's business.

use std::fmt::Write as _;

/// One line of the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    /// (channel size in units, success ratio in percent), any order.
    pub points: Vec<(u64, f64)>,
    /// Hollow markers without a line (published reference points).
    pub reference: bool,
    /// Index into the palette; a scheme's own and reference series share a colour.
    pub colour: usize,
}

const PALETTE: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 460.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the chart.
pub fn success_vs_channel_size(title: &str, series: &[Series], target_pct: f64) -> String {
    let sizes: Vec<u64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|&s| s > 0)
        .collect();
    let min = sizes.iter().copied().min().unwrap_or(1) as f64;
    let max = sizes.iter().copied().max().unwrap_or(2) as f64;
    let (low, high) = (
        min.log2().floor(),
        max.log2().ceil().max(min.log2().floor() + 1.0),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |size: u64| LEFT + ((size.max(1) as f64).log2() - low) / (high - low) * plot_w;
    let y = |pct: f64| TOP + (1.0 - pct.clamp(0.0, 100.0) / 100.0) * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        LEFT + plot_w / 2.0,
        escape(title)
    );
    // Grid and axes.
    for pct in (0..=100).step_by(20) {
        let py = y(pct as f64);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{pct}%</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            py + 4.0
        );
    }
    let mut exponent = low as i32;
    while exponent as f64 <= high {
        let size = 2f64.powi(exponent) as u64;
        let px = x(size);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{size}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0
        );
        exponent += 1;
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">channel size (units, log scale)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 15.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">success ratio</text>"#,
        TOP + plot_h / 2.0
    );
    let ty = y(target_pct);
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#555" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">target {target_pct}%</text>"##,
        LEFT + plot_w,
        LEFT + plot_w - 4.0,
        ty - 4.0
    );
    // Series and legend.
    for (index, line) in series.iter().enumerate() {
        let colour = PALETTE[line.colour % PALETTE.len()];
        let mut points = line.points.clone();
        points.sort_by_key(|p| p.0);
        if !line.reference && points.len() > 1 {
            let coords: Vec<String> = points
                .iter()
                .map(|&(s, p)| format!("{:.1},{:.1}", x(s), y(p)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                coords.join(" ")
            );
        }
        for &(size, pct) in &points {
            let fill = if line.reference { "white" } else { colour };
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{fill}" stroke="{colour}" stroke-width="1.5"/>"#,
                x(size),
                y(pct)
            );
        }
        let ly = TOP + 14.0 + 20.0 * index as f64;
        let lx = WIDTH - RIGHT + 16.0;
        let fill = if line.reference { "white" } else { colour };
        let _ = writeln!(
            svg,
            r#"<circle cx="{lx:.1}" cy="{ly:.1}" r="4" fill="{fill}" stroke="{colour}" stroke-width="1.5"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 10.0,
            ly + 4.0,
            escape(&line.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_and_the_target() {
        let svg = success_vs_channel_size(
            "t <1>",
            &[
                Series {
                    label: "spider".into(),
                    points: vec![(100, 60.0), (800, 95.0)],
                    reference: false,
                    colour: 0,
                },
                Series {
                    label: "paper".into(),
                    points: vec![(800, 95.4)],
                    reference: true,
                    colour: 0,
                },
            ],
            95.0,
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("t &lt;1&gt;") && svg.contains("target 95%"));
    }
}
