//! Connecting to NATS and declaring the stream and buckets (idempotent: every bridge and
//! `hedgectl firm` declare the same configuration; only features of nats-server 2.9 are used).

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::schema::{ACKS_BUCKET, CONTROL_BUCKET, EXECS_STREAM, HOSTS_BUCKET, RISK_BUCKET};

/// Upper bound of any one request to the server, so no loop ever waits on a dead bus.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The JetStream objects a bridge or a firm client uses.
#[derive(Clone)]
pub struct Bus {
    /// The connection.
    pub client: async_nats::Client,
    /// JetStream context.
    pub js: jetstream::Context,
    /// `risk` bucket.
    pub risk: kv::Store,
    /// `hosts` bucket.
    pub hosts: kv::Store,
    /// `control` bucket.
    pub control: kv::Store,
    /// `control_acks` bucket.
    pub acks: kv::Store,
}

/// Connection options shared by the bridge and the firm client: loopback or any URL,
/// reconnect forever at a short fixed delay, bounded requests.
pub fn options(name: &str) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(1))
        .request_timeout(Some(REQUEST_TIMEOUT))
        .max_reconnects(None)
        .reconnect_delay_callback(|attempt| Duration::from_millis(50 * attempt.min(4) as u64))
}

async fn bucket(js: &jetstream::Context, name: &str, history: i64) -> anyhow::Result<kv::Store> {
    if let Ok(s) = js.get_key_value(name).await {
        return Ok(s);
    }
    Ok(js
        .create_key_value(kv::Config {
            bucket: name.to_string(),
            history,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?)
}

/// Declares (or finds) the `EXECS` stream with a duplicate window of `dedup_window`, and
/// the four buckets.
///
/// # Errors
/// The server refuses (JetStream not enabled, a conflicting stream of the same name).
pub async fn declare(client: async_nats::Client, dedup_window: Duration) -> anyhow::Result<Bus> {
    let js = jetstream::new(client.clone());
    js.get_or_create_stream(stream::Config {
        name: EXECS_STREAM.to_string(),
        subjects: vec![format!("{}.>", crate::schema::EXECS_SUBJECT_PREFIX)],
        storage: stream::StorageType::File,
        duplicate_window: dedup_window,
        ..Default::default()
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!("stream {EXECS_STREAM}: {e} (is JetStream enabled: nats-server -js?)")
    })?;
    Ok(Bus {
        risk: bucket(&js, RISK_BUCKET, 1).await?,
        hosts: bucket(&js, HOSTS_BUCKET, 1).await?,
        control: bucket(&js, CONTROL_BUCKET, 16).await?,
        acks: bucket(&js, ACKS_BUCKET, 1).await?,
        client,
        js,
    })
}
