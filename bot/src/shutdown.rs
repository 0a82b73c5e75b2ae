//! One stop signal for the whole bot, as in the orchestrator: a
//! [`Shutdown`] that every loop holds and `select!`s on (the outbox poller,
//! the Slack server, Socket Mode), and the [`Stopper`] that fires it
//! (mini-redis's `Shutdown`, over a watch channel so a loop that looks late
//! still sees it). Dropping the stopper is a stop too, so a running bot
//! that goes away takes its loops with it. [`InFlight`] counts the work a
//! Slack request left running after its answer (a button's action, a late
//! answer through `response_url`), which a stop lets finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Fires the shutdown; held by whoever owns the running bot.
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

/// Work started by a request and not awaited by it: how much is running,
/// so a stop can wait for it instead of cutting a kill in half.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<watch::Sender<usize>>);

/// One piece of work in flight; counted down when it ends, even by a panic.
struct Running(Arc<watch::Sender<usize>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl InFlight {
    /// Runs `work` on its own task, counted until it ends.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.0.send_modify(|n| *n += 1);
        let running = Running(self.0.clone());
        tokio::spawn(async move {
            let _running = running;
            work.await;
        });
    }

    /// Completes when no work is in flight.
    pub async fn idle(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
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
    async fn work_in_flight_is_waited_for_and_counted_out_even_when_it_panics() {
        use futures::FutureExt;
        let work = InFlight::default();
        assert!(work.idle().now_or_never().is_some(), "nothing runs yet");
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        work.spawn(async move {
            let _ = finished.await;
        });
        work.spawn(async { panic!("a handler's bug") });
        assert!(work.idle().now_or_never().is_none(), "idle while work runs");
        finish.send(()).unwrap();
        // Idle only if the panicked task was counted out too.
        tokio::time::timeout(Duration::from_secs(5), work.idle())
            .await
            .expect("idle once the work ended");
    }
}
