//! Releases from every sidecar, heard through PostgreSQL's LISTEN/NOTIFY: a release statement
//! notifies the store's channel with the key, and this task, on a connection of its own (a
//! pooled one may be handed to anyone), relays each key to the waiters of this sidecar.
//!
//! The connection reconnects by itself, backing off while the database is away. Whatever is
//! released while it is down is not heard: waiters never rely on the signal alone, they also
//! look again at the core's polling interval, so a missed notification costs a poll, never a
//! lock.

use std::future::poll_fn;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The longest pause between two attempts to listen again.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Relays the keys notified on `channel` to `released` until the store that started it aborts
/// it (when the store is dropped), which also closes the connection.
pub(crate) async fn relay_releases(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    channel: String,
    released: broadcast::Sender<String>,
) {
    let mut pause = Duration::from_millis(100);
    let mut reported = false;
    loop {
        match listen(&config, &tls, &channel, &released).await {
            Ok(()) => pause = Duration::from_millis(100),
            Err(e) if !reported => {
                tracing::warn!(
                    "not hearing releases on PostgreSQL's channel {channel} ({e}); waiters \
                     poll until it is back"
                );
                reported = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// One connection's life: LISTEN, then relay until it ends (`Ok` when it had been listening).
/// The connection is driven by a task of its own, which ends once the client is dropped.
async fn listen(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    channel: &str,
    released: &broadcast::Sender<String>,
) -> Result<(), String> {
    let (client, mut connection) = config
        .connect(tls.clone())
        .await
        .map_err(|e| super::describe(&e))?;
    // The connection delivers notifications as it is driven: a task of its own drives it.
    let (messages, mut received) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(message) => {
                    if messages.send(message).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    let listening = client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await
        .map_err(|e| super::describe(&e));
    if let Err(e) = listening {
        driver.abort();
        return Err(e);
    }
    tracing::debug!("listening for releases on {channel}");
    while let Some(message) = received.recv().await {
        if let AsyncMessage::Notification(note) = message {
            let _ = released.send(note.payload().to_string());
        }
    }
    // The connection ended.
    Ok(())
}
