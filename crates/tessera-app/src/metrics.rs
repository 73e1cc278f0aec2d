//! Prometheus metrics: what a dashboard needs to watch a node, in the text format
//! Prometheus scrapes (0.0.4). Labels carry result codes, statuses and route templates
//! only, never a token's id or name: nothing here identifies a caller, and no label
//! can grow without bound.
//!
//! Hot-path metrics are handles resolved once (one atomic add per verification);
//! gauges that describe state (index size, change-feed lag, connection pool) are read
//! when scraped.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use tessera_api_types::VerifyCode;

/// Every verification result, in label order: `valid`, then each refusal code.
const RESULTS: [&str; 8] = [
    "valid",
    "malformed",
    "not_found",
    "expired",
    "disabled",
    "forbidden",
    "wrong_project",
    "rate_limited",
];

fn result_index(code: Option<VerifyCode>) -> usize {
    match code {
        None => 0,
        Some(VerifyCode::Malformed) => 1,
        Some(VerifyCode::NotFound) => 2,
        Some(VerifyCode::Expired) => 3,
        Some(VerifyCode::Disabled) => 4,
        Some(VerifyCode::Forbidden) => 5,
        Some(VerifyCode::WrongProject) => 6,
        Some(VerifyCode::RateLimited) => 7,
    }
}

/// Why building the registry failed: a metric defined twice or badly named. A bug,
/// reported at start rather than hidden.
#[derive(Debug, thiserror::Error)]
#[error("metrics registry: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// The node's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    verifications: [IntCounter; RESULTS.len()],
    verify_seconds: Histogram,
    forward_auth: IntCounterVec,
    http_requests: IntCounterVec,
    login_failures: IntCounter,
    usage_flushes: IntCounterVec,
    usage_flush_seconds: Histogram,
    index_tokens: IntGauge,
    change_feed_lag_seconds: prometheus::Gauge,
    pool_connections: IntGauge,
    pool_idle_connections: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new_custom(Some("tessera".into()), None)?;
        let verifications_by_result = IntCounterVec::new(
            Opts::new(
                "verifications_total",
                "Verifications (POST /v1/verify, forward-auth, personal tokens) by result.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(verifications_by_result.clone()))?;
        let verifications =
            RESULTS.map(|result| verifications_by_result.with_label_values(&[result]));
        // 1 µs to about 32 ms: a verification is answered from memory.
        let verify_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "verify_duration_seconds",
                "Time to decide a verification, in process (no network).",
            )
            .buckets(prometheus::exponential_buckets(1e-6, 2.0, 16)?),
        )?;
        registry.register(Box::new(verify_seconds.clone()))?;
        let forward_auth = IntCounterVec::new(
            Opts::new("forward_auth_total", "Forward-auth answers by HTTP status."),
            &["status"],
        )?;
        registry.register(Box::new(forward_auth.clone()))?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route template, method and status.",
            ),
            &["route", "method", "status"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        let login_failures = IntCounter::new(
            "login_failures_total",
            "Sign-ins refused for a wrong email or password (throttled attempts not included).",
        )?;
        registry.register(Box::new(login_failures.clone()))?;
        let usage_flushes = IntCounterVec::new(
            Opts::new(
                "usage_flushes_total",
                "Writes of counted token usage to the database, by outcome.",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(usage_flushes.clone()))?;
        let usage_flush_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "usage_flush_duration_seconds",
                "Time to write counted token usage.",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.0, 14)?),
        )?;
        registry.register(Box::new(usage_flush_seconds.clone()))?;
        let index_tokens = IntGauge::new("index_tokens", "Tokens in this node's verify index.")?;
        registry.register(Box::new(index_tokens.clone()))?;
        let change_feed_lag_seconds = prometheus::Gauge::new(
            "change_feed_lag_seconds",
            "How long ago this node's verify index last caught up with the change feed.",
        )?;
        registry.register(Box::new(change_feed_lag_seconds.clone()))?;
        let pool_connections = IntGauge::new(
            "db_pool_connections",
            "Open database connections in this node's pool.",
        )?;
        registry.register(Box::new(pool_connections.clone()))?;
        let pool_idle_connections = IntGauge::new(
            "db_pool_idle_connections",
            "Idle database connections in this node's pool.",
        )?;
        registry.register(Box::new(pool_idle_connections.clone()))?;
        Ok(Self {
            registry,
            verifications,
            verify_seconds,
            forward_auth,
            http_requests,
            login_failures,
            usage_flushes,
            usage_flush_seconds,
            index_tokens,
            change_feed_lag_seconds,
            pool_connections,
            pool_idle_connections,
        })
    }

    /// One verification: its result (`None` when valid) and how long it took.
    pub fn verified(&self, refusal: Option<VerifyCode>, took: Duration) {
        self.verifications[result_index(refusal)].inc();
        self.verify_seconds.observe(took.as_secs_f64());
    }

    /// One forward-auth answer.
    pub fn forward_auth_answered(&self, status: u16) {
        self.forward_auth
            .with_label_values(&[status_label(status)])
            .inc();
    }

    /// One HTTP request, by the route template that matched (`<unmatched>` otherwise).
    /// Methods outside the standard ones count as `other`: forward-auth accepts any
    /// method, and a label must not grow with what clients invent.
    pub fn http_request(&self, route: &str, method: &str, status: u16) {
        let method = match method {
            "GET" => "GET",
            "HEAD" => "HEAD",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "OPTIONS" => "OPTIONS",
            _ => "other",
        };
        self.http_requests
            .with_label_values(&[route, method, status_label(status)])
            .inc();
    }

    pub(crate) fn login_failed(&self) {
        self.login_failures.inc();
    }

    pub(crate) fn usage_flushed(&self, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "failed" };
        self.usage_flushes.with_label_values(&[outcome]).inc();
        self.usage_flush_seconds.observe(took.as_secs_f64());
    }

    /// The state gauges, as the caller read them just now.
    pub(crate) fn set_state(&self, state: &NodeState) {
        self.index_tokens
            .set(i64::try_from(state.index_tokens).unwrap_or(i64::MAX));
        self.change_feed_lag_seconds
            .set(state.change_feed_lag.as_secs_f64());
        if let Some((size, idle)) = state.pool {
            self.pool_connections.set(i64::from(size));
            self.pool_idle_connections
                .set(i64::try_from(idle).unwrap_or(i64::MAX));
        }
    }

    /// Everything, in the Prometheus text format ([`Metrics::CONTENT_TYPE`]).
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        String::from_utf8(text).map_err(|error| {
            MetricsError(prometheus::Error::Msg(format!(
                "the exposition is not UTF-8: {error}"
            )))
        })
    }

    /// The media type of [`Metrics::render`].
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
}

/// What the state gauges show.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeState {
    pub index_tokens: usize,
    pub change_feed_lag: Duration,
    /// Open and idle connections, where the store has a pool.
    pub pool: Option<(u32, usize)>,
}

/// Statuses as labels without allocating: the ones Tessera answers with, and a class
/// for anything else.
fn status_label(status: u16) -> &'static str {
    const KNOWN: [(u16, &str); 15] = [
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (303, "303"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (409, "409"),
        (413, "413"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (503, "503"),
    ];
    if let Some((_, label)) = KNOWN.iter().find(|(code, _)| *code == status) {
        return label;
    }
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_result_has_its_own_label() {
        let codes = [
            None,
            Some(VerifyCode::Malformed),
            Some(VerifyCode::NotFound),
            Some(VerifyCode::Expired),
            Some(VerifyCode::Disabled),
            Some(VerifyCode::Forbidden),
            Some(VerifyCode::WrongProject),
            Some(VerifyCode::RateLimited),
        ];
        for code in codes {
            let label = RESULTS[result_index(code)];
            assert_eq!(label, code.map_or("valid", VerifyCode::as_str));
        }
    }

    #[test]
    fn the_exposition_names_every_metric_once() {
        let metrics = Metrics::new().expect("registry");
        metrics.verified(Some(VerifyCode::NotFound), Duration::from_micros(3));
        metrics.http_request("/v1/tokens", "GET", 200);
        let text = metrics.render().expect("render");
        assert!(text.contains("tessera_verifications_total{result=\"not_found\"} 1"));
        assert!(text.contains("tessera_verifications_total{result=\"valid\"} 0"));
        assert!(text.contains(
            "tessera_http_requests_total{method=\"GET\",route=\"/v1/tokens\",status=\"200\"} 1"
        ));
        assert_eq!(
            text.matches("# TYPE tessera_verify_duration_seconds ")
                .count(),
            1
        );
    }
}
