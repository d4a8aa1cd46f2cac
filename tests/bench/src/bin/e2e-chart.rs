//! Draws `e2e.sh`'s summary as an SVG chart: messages/s per client,
//! grouped by workload, as horizontal bars on a log scale (the figures span
//! five orders of magnitude), each bar labelled with its value and its
//! round trips per message where they were counted.
//!
//! `e2e-chart SUMMARY.tsv > chart.svg`, where SUMMARY.tsv has the header
//! line `workload client messages messages_per_s ...
//! round_trips_per_message ...` (tab-separated), as `e2e.sh` writes it.
//! A small writer of its own: a plotting crate would bring a font
//! rasteriser and dozens of dependencies for a few rectangles and labels.

use std::fmt::Write as _;
use std::process::ExitCode;

struct Row {
    workload: String,
    client: String,
    rate: f64,
    trips: Option<f64>,
}

/// Each known client's colour: ours in blues, the others apart; unknown
/// clients take [`OTHERS`] in turn.
const COLOURS: [(&str, &str); 7] = [
    ("smtp-send", "#1f5fbf"),
    ("pool-send", "#0f3f8f"),
    ("smtp-send-w2", "#8fb3ea"),
    ("smtp-source", "#7f7f7f"),
    ("lettre-send", "#e07b39"),
    ("lettre-pool-send", "#f0a868"),
    ("mail-send-send", "#3f9f5f"),
];
const OTHERS: [&str; 3] = ["#9f4fbf", "#bf3f3f", "#c9b037"];

const LEFT: f64 = 130.0;
const PLOT: f64 = 560.0;
const RIGHT: f64 = 150.0;
const BAR: f64 = 14.0;
const GAP: f64 = 10.0;
const TOP: f64 = 56.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A decade's label: 0.1, 1, 10, 100, 1k, 10k, 100k.
fn format_decade(decade: f64) -> String {
    let value = 10f64.powf(decade);
    if value >= 1000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 1.0 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

fn format_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else if rate >= 10.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.2}")
    }
}

fn parse(tsv: &str) -> Result<Vec<Row>, String> {
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines.next().ok_or("empty summary")?.split('\t').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("no column {name}"))
    };
    let (w, c, r, t) = (
        column("workload")?,
        column("client")?,
        column("messages_per_s")?,
        column("round_trips_per_message")?,
    );
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let get = |i: usize| fields.get(i).copied().unwrap_or("");
        let Ok(rate) = get(r).parse::<f64>() else {
            continue; // a client whose every run failed
        };
        if rate <= 0.0 {
            continue;
        }
        rows.push(Row {
            workload: get(w).to_owned(),
            client: get(c).to_owned(),
            rate,
            trips: get(t).parse().ok(),
        });
    }
    Ok(rows)
}

fn chart(rows: &[Row]) -> String {
    let mut clients: Vec<&str> = Vec::new();
    let mut workloads: Vec<&str> = Vec::new();
    for row in rows {
        if !clients.contains(&row.client.as_str()) {
            clients.push(&row.client);
        }
        if !workloads.contains(&row.workload.as_str()) {
            workloads.push(&row.workload);
        }
    }
    let colour = |client: &str| {
        COLOURS
            .iter()
            .find(|(name, _)| *name == client)
            .map(|(_, colour)| *colour)
            .unwrap_or_else(|| {
                let i = clients.iter().position(|c| *c == client).unwrap_or(0);
                OTHERS[i % OTHERS.len()]
            })
    };
    // Decades covering every rate.
    let min = rows.iter().map(|r| r.rate).fold(f64::INFINITY, f64::min);
    let max = rows.iter().map(|r| r.rate).fold(0.0, f64::max);
    let lo = min.log10().floor().min(0.0);
    let hi = max.log10().ceil().max(lo + 1.0);
    let x = |rate: f64| LEFT + (rate.log10() - lo) / (hi - lo) * PLOT;

    let height = TOP
        + workloads
            .iter()
            .map(|w| rows.iter().filter(|r| r.workload == *w).count() as f64 * BAR + GAP)
            .sum::<f64>()
        + 40.0
        + 18.0 * clients.len().div_ceil(4) as f64;
    let width = LEFT + PLOT + RIGHT;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="18" font-size="14" font-weight="bold">Messages per second (log scale, medians); "N rt": round trips per message</text>"#
    );
    // Grid: one line per decade.
    let bottom = height - 40.0 - 18.0 * clients.len().div_ceil(4) as f64;
    let mut decade = lo;
    while decade <= hi {
        let gx = LEFT + (decade - lo) / (hi - lo) * PLOT;
        let _ = writeln!(
            svg,
            r##"<line x1="{gx:.1}" y1="{:.1}" x2="{gx:.1}" y2="{bottom:.1}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            TOP - 8.0,
            TOP - 12.0,
            format_decade(decade)
        );
        decade += 1.0;
    }
    let mut y = TOP;
    for workload in &workloads {
        let group: Vec<&Row> = rows.iter().filter(|r| r.workload == *workload).collect();
        let mid = y + group.len() as f64 * BAR / 2.0 + 4.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{mid:.1}" text-anchor="end" font-weight="bold">{}</text>"#,
            LEFT - 8.0,
            escape(workload)
        );
        for row in group {
            let end = x(row.rate).max(LEFT + 1.0);
            let trips = row
                .trips
                .map(|t| format!(", {t:.2} rt"))
                .unwrap_or_default();
            let _ = writeln!(
                svg,
                r#"<rect x="{LEFT}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}">{}{}</text>"#,
                y + 1.0,
                end - LEFT,
                BAR - 2.0,
                colour(&row.client),
                escape(&row.client),
                format_rate(row.rate),
                end + 4.0,
                y + BAR - 3.0,
                format_rate(row.rate),
                escape(&trips)
            );
            y += BAR;
        }
        y += GAP;
    }
    // Legend, four clients a line.
    let mut ly = bottom + 24.0;
    for line in clients.chunks(4) {
        let mut lx = LEFT;
        for client in line {
            let _ = writeln!(
                svg,
                r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
                ly - 10.0,
                colour(client),
                lx + 16.0,
                escape(client)
            );
            lx += 170.0;
        }
        ly += 18.0;
    }
    svg.push_str("</svg>\n");
    svg
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: e2e-chart SUMMARY.tsv > chart.svg");
        return ExitCode::from(2);
    };
    let rows = match std::fs::read_to_string(&path)
        .map_err(|e| format!("{path}: {e}"))
        .and_then(|tsv| parse(&tsv))
    {
        Ok(rows) if !rows.is_empty() => rows,
        Ok(_) => {
            eprintln!("e2e-chart: no figures in {path}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("e2e-chart: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", chart(&rows));
    ExitCode::SUCCESS
}
