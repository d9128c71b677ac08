//! W3C trace context carried in gRPC metadata (`traceparent`,
//! `tracestate`), so that a task's spans join up across gateway, scheduler
//! and worker. Exporting them (OTLP) only needs an exporter on the tracer
//! provider; nothing here changes.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::{KeyRef, MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                KeyRef::Ascii(k) => Some(k.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Writes the current span's trace context into outgoing metadata.
pub fn inject_current(metadata: &mut MetadataMap) {
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut MetadataInjector(metadata));
}

/// Makes `span` a child of the trace context found in incoming metadata.
pub fn set_parent_from_metadata(span: &tracing::Span, metadata: &MetadataMap) {
    let cx = TraceContextPropagator::new().extract(&MetadataExtractor(metadata));
    let _ = span.set_parent(cx);
}

/// The current span's trace context as a map, for messages that travel on a
/// long-lived stream (assignments) rather than in a call's metadata.
pub fn current_context_map() -> HashMap<String, String> {
    let cx = tracing::Span::current().context();
    let mut map = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut map);
    map
}

/// Makes `span` a child of a trace context received as a map.
pub fn set_parent_from_map(span: &tracing::Span, map: &HashMap<String, String>) {
    let cx = TraceContextPropagator::new().extract(map);
    let _ = span.set_parent(cx);
}

/// A client interceptor that adds the current trace context to every call.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceInterceptor;

impl tonic::service::Interceptor for TraceInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        inject_current(req.metadata_mut());
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn context_travels_through_metadata_and_maps() {
        use opentelemetry::trace::TracerProvider;
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let sender = tracing::info_span!("sender");
            let _g = sender.enter();
            let sent = tracing::Span::current()
                .context()
                .span()
                .span_context()
                .trace_id();
            assert_ne!(sent, opentelemetry::trace::TraceId::INVALID);

            let mut meta = MetadataMap::new();
            inject_current(&mut meta);
            assert!(meta.get("traceparent").is_some());
            let receiver = tracing::info_span!("receiver");
            set_parent_from_metadata(&receiver, &meta);
            assert_eq!(receiver.context().span().span_context().trace_id(), sent);

            let map = current_context_map();
            let other = tracing::info_span!("other");
            set_parent_from_map(&other, &map);
            assert_eq!(other.context().span().span_context().trace_id(), sent);
        });
    }
}
