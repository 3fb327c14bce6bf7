//! Drives the branches of the relay loop until one of them ends, polling a
//! branch only after something woke it.
//!
//! `tokio::select!` polls every branch whenever the task wakes. In the relay
//! most wake-ups concern one leg, and polling the idle leg and the
//! termination signal again costs about as much as relaying a small
//! message. Each branch here gets its own waker, which records the wake-up
//! and then wakes the task.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;

/// Waker of the task that runs the race, shared by its branches.
type TaskWaker = Mutex<Option<Waker>>;

/// Wake-up state of one branch.
struct BranchWake {
    woken: AtomicBool,
    task: Arc<TaskWaker>,
}

impl Wake for BranchWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(task) = self.task.lock().as_ref() {
            task.wake_by_ref();
        }
    }
}

/// The branches of one race, each with its own waker.
pub struct Branches<const N: usize> {
    task: Arc<TaskWaker>,
    branches: [(Arc<BranchWake>, Waker); N],
}

impl<const N: usize> Branches<N> {
    /// Branches that are all polled on the first poll of the race.
    pub fn new() -> Self {
        let task = Arc::new(Mutex::new(None));
        let branches = std::array::from_fn(|_| {
            let state = Arc::new(BranchWake { woken: AtomicBool::new(true), task: task.clone() });
            let waker = Waker::from(state.clone());
            (state, waker)
        });
        Branches { task, branches }
    }

    /// Records the waker of the polling task. Call it first on every poll.
    pub fn follow_task(&self, cx: &Context<'_>) {
        let mut task = self.task.lock();
        if !task.as_ref().is_some_and(|known| known.will_wake(cx.waker())) {
            *task = Some(cx.waker().clone());
        }
    }

    /// Polls `future`, branch `index`, if it was woken since its last poll.
    pub fn poll<F: Future>(&self, index: usize, future: Pin<&mut F>) -> Poll<F::Output> {
        let (state, waker) = &self.branches[index];
        if !state.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        future.poll(&mut Context::from_waker(waker))
    }
}

#[cfg(test)]
mod tests {
    use super::Branches;
    use std::cell::Cell;
    use std::future::poll_fn;
    use std::pin::pin;
    use std::task::Poll;

    #[tokio::test]
    async fn idle_branch_is_not_polled_again() {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let idle_polls = Cell::new(0);
        let mut idle = pin!(poll_fn(|_| {
            idle_polls.set(idle_polls.get() + 1);
            Poll::<()>::Pending
        }));
        let mut busy = pin!(async move {
            let mut sum = 0;
            while let Some(n) = receiver.recv().await {
                sum += n;
            }
            sum
        });
        let branches = Branches::<2>::new();
        let feeder = tokio::spawn(async move {
            for n in 1..=5 {
                sender.send(n).expect("receiver alive");
                tokio::task::yield_now().await;
            }
        });

        let sum = poll_fn(|cx| {
            branches.follow_task(cx);
            if branches.poll(0, idle.as_mut()).is_ready() {
                return Poll::Ready(0);
            }
            branches.poll(1, busy.as_mut())
        })
        .await;

        feeder.await.expect("feeder finished");
        assert_eq!(sum, 15);
        assert_eq!(idle_polls.get(), 1);
    }
}
