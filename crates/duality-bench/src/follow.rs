//! What every bench subscriber does: read one stream's change events until
//! it has seen the last write or is told to stop, and collect all of them
//! after the writes with a grace period for stragglers.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub(super) enum Control {
    Running,
    /// Every write is acknowledged; a listener is done at this progress.
    Last(u64),
    /// Give up waiting.
    Stop,
}

/// One change event as it arrived.
pub(super) struct Change<'a> {
    pub revision: u64,
    /// True unless the revision was already seen (an out-of-order repeat).
    pub fresh: bool,
    pub data: &'a str,
    pub at: Instant,
}

/// How a stream was read: the scenario's own findings in `seen`.
pub(super) struct Followed<T> {
    pub seen: T,
    /// Revisions that were not the next one.
    pub out_of_order: u64,
    pub error: Option<String>,
}

/// The first time each revision arrived: the `on_change` of a listener
/// that measures latency per write.
pub(super) fn arrivals(times: &mut Vec<(u64, Instant)>, c: Change<'_>) -> u64 {
    if c.fresh {
        times.push((c.revision, c.at));
    }
    c.revision
}

/// One [`follow`] per stream, each from revision `from` with its own empty
/// `T`, then a moment for every listener to start reading before the
/// first write. The sender steers them all.
pub(super) async fn listen_all<T, F>(
    streams: Vec<reqwest::Response>,
    from: u64,
    on_change: F,
) -> (watch::Sender<Control>, JoinSet<Followed<T>>)
where
    T: Default + Send + 'static,
    F: FnMut(&mut T, Change<'_>) -> u64 + Clone + Send + 'static,
{
    let (control, controlled) = watch::channel(Control::Running);
    let mut listeners = JoinSet::new();
    for response in streams {
        listeners.spawn(follow(
            response,
            controlled.clone(),
            from,
            T::default(),
            on_change.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    (control, listeners)
}

/// Reads the change events of `response` (the first expected is `from`),
/// handing each to `on_change`, which records it into `seen` and answers
/// the progress it reached; stops when the progress reaches the last one
/// announced by `control`, or on `Stop`, an error or a named event.
pub(super) async fn follow<T>(
    response: reqwest::Response,
    mut control: watch::Receiver<Control>,
    from: u64,
    mut seen: T,
    mut on_change: impl FnMut(&mut T, Change<'_>) -> u64,
) -> Followed<T> {
    let mut events = response.bytes_stream().eventsource();
    let (mut next, mut progress, mut last) = (from, 0u64, None);
    let mut out_of_order = 0;
    let error = loop {
        if last.is_some_and(|last| progress >= last) {
            break None;
        }
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) if event.event == "message" => {
                    let at = Instant::now();
                    let Ok(revision) = event.id.parse::<u64>() else {
                        break Some(format!("an event without a revision: {event:?}"));
                    };
                    if revision != next {
                        out_of_order += 1;
                    }
                    let fresh = revision >= next;
                    next = next.max(revision + 1);
                    let change = Change { revision, fresh, data: &event.data, at };
                    progress = progress.max(on_change(&mut seen, change));
                }
                // Position bookkeeping, not a change.
                Some(Ok(event)) if event.event == "caught-up" || event.event == "progress" => {}
                Some(Ok(event)) => break Some(format!("a `{}` event: {}", event.event, event.data)),
                Some(Err(e)) => break Some(e.to_string()),
                None => break Some("the stream ended".into()),
            },
            changed = control.changed() => {
                if changed.is_err() {
                    break None;
                }
                match *control.borrow_and_update() {
                    Control::Running => {}
                    Control::Last(l) => last = Some(l),
                    Control::Stop => break None,
                }
            }
        }
    };
    Followed {
        seen,
        out_of_order,
        error,
    }
}

/// Announces `last` to the listeners and collects them all, telling them to
/// stop after `grace`; answers what they saw and how long it took (ms).
pub(super) async fn collect<T: 'static>(
    mut listeners: JoinSet<T>,
    control: &watch::Sender<Control>,
    last: u64,
    grace: Duration,
) -> Result<(Vec<T>, f64), String> {
    let _ = control.send(Control::Last(last));
    let acked = Instant::now();
    let deadline = acked + grace;
    let mut heard = Vec::with_capacity(listeners.len());
    let mut stopped = false;
    loop {
        tokio::select! {
            joined = listeners.join_next() => match joined {
                Some(Ok(h)) => heard.push(h),
                Some(Err(e)) => return Err(format!("a subscriber task failed: {e}")),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline), if !stopped => {
                let _ = control.send(Control::Stop);
                stopped = true;
            }
        }
    }
    Ok((heard, acked.elapsed().as_secs_f64() * 1000.0))
}
