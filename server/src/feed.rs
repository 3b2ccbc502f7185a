//! [`Feed`]: wakes long-polls and event streams when a user's cursor advances.
//!
//! One `watch` channel per user that has ever been watched or written. The channel only
//! says "the cursor is at least N"; the database stays the source of truth, so a watcher
//! always re-reads after waking and a missed wake-up costs latency, never data.

use crate::meta::UserId;
use savesync_core::Seq;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use tokio::sync::watch;

/// Per-user cursor notifications.
#[derive(Debug, Default)]
pub struct Feed {
    users: Mutex<HashMap<UserId, watch::Sender<Seq>>>,
}

impl Feed {
    /// Watch `user`'s cursor. Subscribe BEFORE reading the database, so a commit that lands
    /// between the read and the wait still wakes the watcher.
    pub fn subscribe(&self, user: UserId) -> watch::Receiver<Seq> {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        users.entry(user).or_insert_with(|| watch::channel(Seq::START).0).subscribe()
    }

    /// Announce that `user`'s cursor reached `seq`. Commits may finish out of order, so
    /// the value only ever moves forward.
    pub fn publish(&self, user: UserId, seq: Seq) {
        let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = users.get(&user) {
            sender.send_if_modified(|current| {
                let advanced = seq > *current;
                if advanced {
                    *current = seq;
                }
                advanced
            });
        }
    }

    /// Users with at least one live watcher here (for the feed bus's catch-up after it
    /// lost notifications).
    pub fn watched_users(&self) -> Vec<UserId> {
        let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        users.iter().filter(|(_, s)| s.receiver_count() > 0).map(|(u, _)| *u).collect()
    }

    /// Wake `user`'s watchers without a new cursor: they re-read the database.
    pub fn wake(&self, user: UserId) {
        let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = users.get(&user) {
            sender.send_modify(|_| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscriber_wakes_on_publish_and_value_never_goes_back() {
        let feed = Feed::default();
        let mut rx = feed.subscribe(1);
        feed.publish(1, Seq(5));
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), Seq(5));
        feed.publish(1, Seq(4));
        assert!(!rx.has_changed().unwrap());
        feed.publish(2, Seq(9));
        assert!(!rx.has_changed().unwrap());
    }

    #[tokio::test]
    async fn wake_signals_without_moving_the_cursor_and_only_live_watchers_count() {
        let feed = Feed::default();
        let mut rx = feed.subscribe(1);
        drop(feed.subscribe(2));
        feed.publish(1, Seq(3));
        rx.borrow_and_update();
        assert_eq!(feed.watched_users(), vec![1]);
        feed.wake(1);
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), Seq(3));
    }
}
