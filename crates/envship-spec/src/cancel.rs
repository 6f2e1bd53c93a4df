//! The process-wide request to stop: set once by whoever owns the process's signals (the
//! binary, on SIGINT/SIGTERM/SIGHUP), read by the stages at the points where stopping is safe.
//!
//! The libraries never touch signals. They check [`is_requested`] between steps, or race their
//! long waits against [`requested`], and return their own `Interrupted` error, cleaning up what
//! they created on the way out. Work stuck where no check can reach it (a blocking `open` of a
//! FIFO, a read of a hung NFS mount) is the binary's to end: it exits after a grace period
//! whatever the stages do, so an interrupt never hangs the process.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    task::{Context, Poll, Waker},
};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static WAKERS: Mutex<Vec<Waker>> = Mutex::new(Vec::new());

/// Ask every stage to stop. Idempotent; wakes every task waiting in [`requested`].
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
    let wakers = match WAKERS.lock() {
        Ok(mut w) => std::mem::take(&mut *w),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for w in wakers {
        w.wake();
    }
}

/// Whether a stop was requested.
pub fn is_requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// A future that completes once a stop is requested (at once if it already was): race a long
/// wait against it with `select!`. Works on any executor.
pub fn requested() -> Requested {
    Requested
}

/// See [`requested`].
#[derive(Debug)]
pub struct Requested;

impl Future for Requested {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if is_requested() {
            return Poll::Ready(());
        }
        {
            let mut wakers = match WAKERS.lock() {
                Ok(w) => w,
                Err(poisoned) => poisoned.into_inner(),
            };
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
        }
        // A request between the first check and the push would otherwise be missed.
        if is_requested() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{sync::Arc, task::Wake};

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    // One test, because the request is process-wide and cannot be taken back.
    #[test]
    fn a_request_completes_the_waiters_and_stays() {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = requested();
        assert!(!is_requested());
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Pending);
        let t = std::thread::spawn(request);
        t.join().expect("the requesting thread");
        assert!(flag.0.load(Ordering::SeqCst), "the waiting task was woken");
        assert!(is_requested());
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(()));
        assert_eq!(Pin::new(&mut requested()).poll(&mut cx), Poll::Ready(()));
    }
}
