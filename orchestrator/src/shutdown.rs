//! One shutdown signal for the whole orchestrator: a [`Shutdown`] that every
//! background loop and the API server hold and `select!` on, and the
//! [`Stopper`] that fires it (mini-redis's `Shutdown`, over a watch channel
//! so a loop that looks late still sees it). Dropping the stopper is a stop
//! too, so an `Application` that goes away takes its loops with it.

use std::time::Duration;

use tokio::sync::watch;

/// Fires the shutdown; held by whoever owns the running orchestrator.
#[derive(Debug)]
pub struct Stopper(watch::Sender<bool>);

/// The signal, as each task holds it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Stopper, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Stopper(tx), Shutdown(rx))
}

impl Stopper {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    pub fn is_stopping(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Completes once the stop is asked (at once if it was). Cancel-safe.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        // An error means the stopper is gone: a stop as well.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `period`; false when the stop came first.
    pub async fn sleep(&self, period: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(period) => true,
            _ = self.wait() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_holder_sees_the_stop_even_one_that_looks_late() {
        let (stopper, shutdown) = channel();
        let early = shutdown.clone();
        let waiting = tokio::spawn(async move { early.wait().await });
        assert!(!shutdown.is_stopping());
        stopper.stop();
        waiting.await.unwrap();
        assert!(shutdown.is_stopping());
        // A holder that arrives after the stop does not wait.
        shutdown.clone().wait().await;
        assert!(!shutdown.sleep(Duration::from_secs(3600)).await);
    }

    #[tokio::test]
    async fn dropping_the_stopper_stops_too() {
        let (stopper, shutdown) = channel();
        drop(stopper);
        shutdown.wait().await;
        assert!(shutdown.is_stopping());
    }

    #[tokio::test]
    async fn a_sleep_without_a_stop_runs_its_course() {
        let (_stopper, shutdown) = channel();
        assert!(shutdown.sleep(Duration::from_millis(5)).await);
        assert!(!shutdown.is_stopping());
    }
}
