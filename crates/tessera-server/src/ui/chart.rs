//! The usage chart of a token: allowed and denied verifications per day, drawn as a
//! stacked bar chart in server-rendered SVG (no chart library, nothing to download).
//! Colours come from the stylesheet, so the chart follows the light and dark themes.

use tessera_api_types::UsageView;

use crate::ui::i18n::Lang;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// One day's stacked bar; coordinates already formatted for the SVG.
#[derive(Debug, Clone)]
pub struct Bar {
    pub x: String,
    pub width: String,
    pub allowed_y: String,
    pub allowed_height: String,
    pub denied_y: String,
    pub denied_height: String,
    /// What a pointer over the bar reads (`2026-11-30: 12 allowed, 1 denied`).
    pub label: String,
}

/// A label under the x axis.
#[derive(Debug, Clone)]
pub struct Tick {
    pub x: String,
    pub label: String,
}

/// The chart, ready for the template.
#[derive(Debug, Clone)]
pub struct UsageChart {
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
    pub max: u64,
    /// One sentence with the totals, for screen readers and as the chart's caption.
    pub summary: String,
    /// The span switcher: (days, URL, selected).
    pub spans: Vec<(u32, String, bool)>,
    pub view_box: String,
    pub axis_y: String,
    pub axis_left: String,
    pub axis_right: String,
    pub max_y: String,
}

fn coordinate(value: f64) -> String {
    format!("{value:.1}")
}

impl UsageChart {
    pub fn new(usage: &UsageView, days: u32, lang: Lang, token_id: &str) -> Self {
        let max = usage
            .days
            .iter()
            .map(|day| day.allowed + day.denied)
            .max()
            .unwrap_or(0)
            .max(1);
        let plot_width = WIDTH - LEFT - RIGHT;
        let plot_height = HEIGHT - TOP - BOTTOM;
        let base = HEIGHT - BOTTOM;
        let count = usage.days.len().max(1) as f64;
        let slot = plot_width / count;
        let scale = |value: u64| value as f64 / max as f64 * plot_height;
        let label_every = usage.days.len().div_ceil(7).max(1);
        let mut bars = Vec::with_capacity(usage.days.len());
        let mut ticks = Vec::new();
        for (index, day) in usage.days.iter().enumerate() {
            let x = LEFT + slot * index as f64 + slot * 0.15;
            let allowed_height = scale(day.allowed);
            let denied_height = scale(day.denied);
            bars.push(Bar {
                x: coordinate(x),
                width: coordinate(slot * 0.7),
                allowed_y: coordinate(base - allowed_height),
                allowed_height: coordinate(allowed_height),
                denied_y: coordinate(base - allowed_height - denied_height),
                denied_height: coordinate(denied_height),
                label: lang
                    .tf("usage.bar", "date", &day.date)
                    .replace("%{allowed}", &day.allowed.to_string())
                    .replace("%{denied}", &day.denied.to_string()),
            });
            if (usage.days.len() - 1 - index).is_multiple_of(label_every) {
                ticks.push(Tick {
                    x: coordinate(x + slot * 0.35),
                    label: day.date.get(5..).unwrap_or(&day.date).to_owned(),
                });
            }
        }
        let total_allowed: u64 = usage.days.iter().map(|day| day.allowed).sum();
        let total_denied: u64 = usage.days.iter().map(|day| day.denied).sum();
        let summary = lang
            .tf("usage.summary", "days", &days.to_string())
            .replace("%{allowed}", &total_allowed.to_string())
            .replace("%{denied}", &total_denied.to_string());
        Self {
            bars,
            ticks,
            max,
            summary,
            spans: [7, 30, 90]
                .into_iter()
                .map(|span| {
                    (
                        span,
                        format!("/admin/tokens/{token_id}?days={span}#usage"),
                        span == days,
                    )
                })
                .collect(),
            view_box: format!("0 0 {WIDTH} {HEIGHT}"),
            axis_y: coordinate(base),
            axis_left: coordinate(LEFT),
            axis_right: coordinate(WIDTH - RIGHT),
            max_y: coordinate(TOP + 4.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_api_types::UsageDay;

    #[test]
    fn bars_scale_to_the_busiest_day_and_stack_denied_on_allowed() {
        let usage = UsageView {
            days: vec![
                UsageDay {
                    date: "2026-11-29".into(),
                    allowed: 30,
                    denied: 10,
                },
                UsageDay {
                    date: "2026-11-30".into(),
                    allowed: 0,
                    denied: 0,
                },
            ],
        };
        let chart = UsageChart::new(&usage, 7, Lang::En, "id");
        assert_eq!(chart.max, 40);
        let busiest = &chart.bars[0];
        let plot = HEIGHT - TOP - BOTTOM;
        assert_eq!(busiest.allowed_height, coordinate(plot * 0.75));
        assert_eq!(busiest.denied_height, coordinate(plot * 0.25));
        assert_eq!(busiest.denied_y, coordinate(TOP));
        assert_eq!(chart.bars[1].allowed_height, "0.0");
        assert!(busiest.label.contains("30") && busiest.label.contains("10"));
        assert_eq!(
            chart.summary,
            "Last 7 days: 30 allowed and 10 denied verifications."
        );
        assert_eq!(chart.spans.iter().filter(|(_, _, on)| *on).count(), 1);
    }
}
