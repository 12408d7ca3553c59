//! The `tracing` layer that publishes events: what runs on the caller's thread.
//!
//! The caller's share is kept small and free of system calls: read the clock (vDSO), copy
//! the event's field values into typed [`Value`]s (a string allocation for text fields),
//! clone the `Arc`s of the enclosing spans' fields, and push onto the bounded queue.
//! Timestamp formatting, map building and MessagePack encoding happen on the publisher
//! thread ([`super::publisher`]).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::pending::{Fields, Pending};
use super::publisher::Queue;
use super::record::MAX_STRING_BYTES;
use crate::codec::Value;

/// A span's fields, kept in the span's extensions. Shared by `Arc` so that each event in
/// the span costs a reference count, not a copy.
struct SpanFields(Arc<Fields>);

/// Publishes every event it sees (the subscriber's level filter decides which) to the log
/// forwarder, through the queue of a publisher started by [`super::publish_layer`].
pub struct PublishLayer {
    queue: Arc<Queue>,
}

impl PublishLayer {
    pub(crate) fn new(queue: Arc<Queue>) -> Self {
        Self { queue }
    }
}

impl<S> Layer<S> for PublishLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut FieldVisitor::for_span(&mut fields));
        if fields.is_empty() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(Arc::new(fields)));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut FieldVisitor::for_span(Arc::make_mut(fields)));
        } else {
            let mut fields = Fields::new();
            values.record(&mut FieldVisitor::for_span(&mut fields));
            extensions.insert(SpanFields(Arc::new(fields)));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let time = SystemTime::now();
        let meta = event.metadata();
        let mut fields = Fields::with_capacity(meta.fields().len());
        let mut visitor = FieldVisitor {
            fields: &mut fields,
            message: None,
            is_span: false,
        };
        event.record(&mut visitor);
        let message = visitor.message;
        let spans = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .filter_map(|span| {
                        span.extensions()
                            .get::<SpanFields>()
                            .map(|SpanFields(f)| f.clone())
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.queue.push(Pending {
            time,
            meta,
            message,
            fields,
            spans,
        });
    }
}

/// Turns `tracing` field values into typed MessagePack values.
struct FieldVisitor<'a> {
    fields: &'a mut Fields,
    /// The event's `message` (events only; a span's `message` is an ordinary field).
    message: Option<String>,
    /// A span may record a field again (`Span::record`): replace, so it cannot grow.
    is_span: bool,
}

impl<'a> FieldVisitor<'a> {
    fn for_span(fields: &'a mut Fields) -> Self {
        Self {
            fields,
            message: None,
            is_span: true,
        }
    }

    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if self.is_span {
            if let Some(slot) = self.fields.iter_mut().find(|(n, _)| *n == name) {
                slot.1 = value;
                return;
            }
        }
        self.fields.push((name, value));
    }

    fn put_text(&mut self, field: &Field, mut text: String) {
        if !self.is_span && field.name() == "message" {
            self.message = Some(text);
            return;
        }
        truncate(&mut text);
        self.put(field, Value::from(text));
    }
}

/// Cuts `text` to [`MAX_STRING_BYTES`] at a character boundary, marking the cut.
fn truncate(text: &mut String) {
    if text.len() > MAX_STRING_BYTES {
        let mut end = MAX_STRING_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::F64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.put(field, Value::from(v)),
            Err(_) => match u64::try_from(value) {
                Ok(v) => self.put(field, Value::from(v)),
                Err(_) => self.put_text(field, value.to_string()),
            },
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.put(field, Value::from(v)),
            Err(_) => self.put_text(field, value.to_string()),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Boolean(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put_text(field, value.to_owned());
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        let end = value.len().min(MAX_STRING_BYTES);
        self.put(field, Value::Binary(value[..end].to_vec()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put_text(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put_text(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let mut text = "é".repeat(MAX_STRING_BYTES);
        truncate(&mut text);
        assert!(text.len() <= MAX_STRING_BYTES + '…'.len_utf8());
        assert!(text.ends_with('…'));
        let mut short = "short".to_owned();
        truncate(&mut short);
        assert_eq!(short, "short");
    }
}
