//! pilot-report: self-contained HTML reports with inline SVG plots.
//!
//! Both `pilot report` (a characterize run's latency, throughput and distributions) and
//! `pilot recommend --report` (the cost-vs-latency frontier) write one HTML file that opens
//! offline: inline CSS, SVG drawn by `plotters` inline, no script, no font or style fetched.
//! The pieces they share live here, below both stage crates, so that neither depends on the
//! other and the plotting is written once:
//!
//! - [`plot`]: a [`plot::Chart`] (series, markers, threshold lines) drawn to an SVG string.
//! - [`html`]: [`html::escape`] and [`html::Page`], the document the charts and tables go in.

pub mod html;
pub mod plot;
