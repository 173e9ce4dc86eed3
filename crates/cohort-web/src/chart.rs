//! Charts drawn on the server as SVG: no script, no library, readable by
//! screen readers through their title and description.

use chrono::{Datelike, Timelike};
use cohort_domain::time::from_micros;

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
}
