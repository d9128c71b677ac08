//! Logging and tracing set-up for every role of the binary.
//!
//! Spans go through an OpenTelemetry tracer provider so that each has a
//! W3C trace id that travels in gRPC metadata; adding an OTLP exporter to
//! the provider is all that exporting them would take.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// Installs the global subscriber. `RUST_LOG` overrides `default_level`.
pub fn init(default_level: &str) -> SdkTracerProvider {
    let provider = SdkTracerProvider::builder().build();
    // Parsers log what they find odd in hostile samples; the module's result
    // says what matters, so their warnings stay out of the log by default.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},goblin=error")));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("multiscanner")))
        .try_init();
    provider
}
