//! Charts drawn on the server as SVG: no script, no library, readable by
//! screen readers through their title and description.

use chrono::{Datelike, Timelike};
use cohort_domain::time::from_micros;

use cohort_store::segments::DailyCount;

use crate::format::group;

const HOUR: i64 = 3600 * 1_000_000;

/// A bar per hour from `start` (the start of an hour, µs) for `hours`
/// hours; `counts` are (hour start µs, count), any order, gaps allowed.
pub(crate) fn hourly_bars(start: i64, hours: usize, counts: &[(i64, i64)]) -> String {
    let mut values = vec![0i64; hours];
    for (at, n) in counts {
        let i = (at - start).div_euclid(HOUR);
        if (0..hours as i64).contains(&i) {
            values[i as usize] += n;
        }
    }
    let total: i64 = values.iter().sum();
    let max = values.iter().copied().max().unwrap_or(0);
    let top = nice_ceiling(max);
    let (width, height, left, bottom, top_pad) =
        (840.0_f64, 220.0_f64, 44.0_f64, 24.0_f64, 10.0_f64);
    let plot_w = width - left - 6.0;
    let plot_h = height - bottom - top_pad;
    let slot = plot_w / hours.max(1) as f64;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-labelledby=\"chart-title chart-desc\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title id=\"chart-title\">Events per hour, last {days} days</title>\
         <desc id=\"chart-desc\">{total} events in all; the busiest hour had {max}.</desc>",
        days = hours / 24,
        total = group(&total.to_string()),
        max = group(&max.to_string()),
    );
    let steps = ticks(top);
    for step in 0..=steps {
        let value = top * step / steps;
        let y = top_pad + plot_h - plot_h * step as f64 / steps as f64;
        svg.push_str(&format!(
            "<line class=\"grid-line\" x1=\"{left}\" x2=\"{x2}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{label}</text>",
            x2 = width - 6.0,
            tx = left - 6.0,
            ty = y + 4.0,
            label = short(value),
        ));
    }
    for (i, n) in values.iter().enumerate() {
        let at = start + i as i64 * HOUR;
        let time = from_micros(at);
        if time.hour() == 0 && i + 12 < hours {
            let x = left + slot * i as f64;
            svg.push_str(&format!(
                "<text x=\"{x:.1}\" y=\"{y}\">{day} {date}</text>",
                y = height - 6.0,
                day = time.weekday(),
                date = time.format("%d %b"),
            ));
        }
        if *n == 0 || top == 0 {
            continue;
        }
        let h = (plot_h * *n as f64 / top as f64).max(1.5);
        svg.push_str(&format!(
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"1\"><title>{when}: {n} events</title></rect>",
            x = left + slot * i as f64 + slot * 0.12,
            y = top_pad + plot_h - h,
            w = slot * 0.76,
            when = time.format("%a %d %b %H:00 UTC"),
            n = group(&n.to_string()),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// A segment's members at the close of each day: a line over an area
/// with a grid and day labels, for the segment's page.
pub(crate) fn membership_chart(name: &str, days: &[DailyCount]) -> String {
    let (width, height, left, bottom, top_pad) =
        (840.0_f64, 200.0_f64, 44.0_f64, 24.0_f64, 10.0_f64);
    let plot_w = width - left - 10.0;
    let plot_h = height - bottom - top_pad;
    let max = days.iter().map(|d| d.members).max().unwrap_or(0);
    let top = nice_ceiling(max);
    let mut svg = format!(
        "<svg class=\"chart membership\" viewBox=\"0 0 {width} {height}\" role=\"img\" \
         aria-labelledby=\"members-chart-title members-chart-desc\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"members-chart-title\">Members of {name}, last {n} days</title>\
         <desc id=\"members-chart-desc\">{summary}</desc>",
        name = escape(name),
        n = days.len(),
        summary = summary(days),
    );
    let steps = ticks(top);
    for step in 0..=steps {
        let value = top * step / steps;
        let y = top_pad + plot_h - plot_h * step as f64 / steps as f64;
        svg.push_str(&format!(
            "<line class=\"grid-line\" x1=\"{left}\" x2=\"{x2}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{label}</text>",
            x2 = width - 10.0,
            tx = left - 6.0,
            ty = y + 4.0,
            label = short(value),
        ));
    }
    let points = line_points(days, left, top_pad, plot_w, plot_h, top);
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let line = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect::<Vec<_>>()
            .join(" ");
        let base = top_pad + plot_h;
        svg.push_str(&format!(
            "<polygon class=\"area\" points=\"{x0:.1},{base:.1} {line} {x1:.1},{base:.1}\"/>\
             <polyline class=\"line\" points=\"{line}\"/>",
            x0 = first.0,
            x1 = last.0,
        ));
    }
    for (i, (d, (x, y))) in days.iter().zip(&points).enumerate() {
        let time = from_micros(d.day_start_us);
        if i % 7 == (days.len() - 1) % 7 {
            // The last label ends at its point, inside the chart.
            let anchor = if i + 1 == days.len() { "end" } else { "middle" };
            svg.push_str(&format!(
                "<text x=\"{x:.1}\" y=\"{ty}\" text-anchor=\"{anchor}\">{date}</text>",
                ty = height - 6.0,
                date = time.format("%d %b"),
            ));
        }
        svg.push_str(&format!(
            "<circle class=\"dot\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\"><title>{date}: {n} members</title></circle>",
            date = time.format("%a %d %b"),
            n = group(&d.members.to_string()),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// The same in small, for a row of the segments list; `id` makes its
/// title's id unique on the page.
pub(crate) fn membership_spark(id: &str, name: &str, days: &[DailyCount]) -> String {
    let (width, height, pad) = (120.0_f64, 32.0_f64, 3.0_f64);
    let max = days.iter().map(|d| d.members).max().unwrap_or(0).max(1);
    let points = line_points(days, pad, pad, width - 2.0 * pad, height - 2.0 * pad, max);
    let line = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" \
         aria-labelledby=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\"><title id=\"{id}\">Members of {name}, last {n} days: {summary}</title>\
         <polyline class=\"line\" points=\"{line}\"/></svg>",
        name = escape(name),
        n = days.len(),
        summary = summary(days),
    )
}

/// Where each day's count sits in a plot.
fn line_points(
    days: &[DailyCount],
    left: f64,
    top_pad: f64,
    plot_w: f64,
    plot_h: f64,
    top: i64,
) -> Vec<(f64, f64)> {
    let step = plot_w / (days.len().max(2) - 1) as f64;
    days.iter()
        .enumerate()
        .map(|(i, d)| {
            let share = if top == 0 {
                0.0
            } else {
                d.members as f64 / top as f64
            };
            (left + step * i as f64, top_pad + plot_h - plot_h * share)
        })
        .collect()
}

/// "From 3 to 12 members; today 12."
fn summary(days: &[DailyCount]) -> String {
    let low = days.iter().map(|d| d.members).min().unwrap_or(0);
    let high = days.iter().map(|d| d.members).max().unwrap_or(0);
    let today = days.last().map(|d| d.members).unwrap_or(0);
    format!(
        "between {} and {} members; {} today.",
        group(&low.to_string()),
        group(&high.to_string()),
        group(&today.to_string())
    )
}

/// Text inside the SVG markup (drawn here, shown with `|safe`).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The smallest "round" number at or above `n` (1, 2, 5 × 10^k), at least 4.
fn nice_ceiling(n: i64) -> i64 {
    let mut base = 1;
    loop {
        for m in [1, 2, 5] {
            if base * m >= n.max(4) {
                return base * m;
            }
        }
        base *= 10;
    }
}

/// Grid lines that fall on whole numbers: 10 → 0, 2, …, 10; 20 → 0, 5, …,
/// 20; 50 → 0, 10, …, 50.
fn ticks(top: i64) -> i64 {
    let mut lead = top;
    while lead >= 10 && lead % 10 == 0 {
        lead /= 10;
    }
    match lead {
        2 => 4,
        _ => 5,
    }
}

fn short(n: i64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{}M", n / 1_000_000),
        n if n >= 10_000 => format!("{}k", n / 1000),
        n => group(&n.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_hour_with_events_and_a_text_summary() {
        let start = 100 * HOUR;
        let svg = hourly_bars(
            start,
            168,
            &[
                (start, 3),
                (start + 5 * HOUR, 7),
                (start - HOUR, 99),
                (start + 168 * HOUR, 1),
            ],
        );
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert!(
            svg.contains("10 events in all; the busiest hour had 7."),
            "{svg}"
        );
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(0), 5);
        assert_eq!(nice_ceiling(1234), 2000);
        assert_eq!([ticks(10), ticks(20), ticks(50), ticks(5)], [5, 4, 5, 5]);
    }

    #[test]
    fn the_membership_chart_has_a_point_per_day_and_escapes_the_name() {
        let day = 86_400_000_000;
        let days: Vec<DailyCount> = (0..30)
            .map(|i| DailyCount {
                day_start_us: 20_000 * day + i * day,
                members: i / 3,
            })
            .collect();
        let svg = membership_chart("<VIP>", &days);
        assert_eq!(svg.matches("<circle").count(), 30, "{svg}");
        assert!(
            svg.contains("&lt;VIP&gt;") && !svg.contains("<VIP>"),
            "{svg}"
        );
        assert!(svg.contains("between 0 and 9 members; 9 today."), "{svg}");
        let spark = membership_spark("s-1", "A & B", &days);
        assert!(
            spark.contains("A &amp; B") && spark.contains("id=\"s-1\""),
            "{spark}"
        );
    }
}
