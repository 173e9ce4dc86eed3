//! A local HTTP receiver standing in for a destination (a webhook, a
//! postback URL): it records every request and answers as the test
//! scripts it — given statuses in turn, never, or only once released.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The body of every answer the receiver gives.
pub const RECEIVER_ANSWER: &str = "answer from the receiver";

/// What the receiver does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Answer this status (with [`RECEIVER_ANSWER`] as body).
    Status(u16),
    /// Never answer: the sender runs into its own timeout.
    Hang,
    /// Keep the request unanswered until [`Receiver::release_held`].
    Hold,
}

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status answered; `None` while held or hanging.
    pub answered: Option<u16>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A running receiver; clones share it.
#[derive(Clone)]
pub struct Receiver {
    state: Arc<Mutex<State>>,
    url: String,
}

struct State {
    requests: Vec<Received>,
    /// Answers for the next requests, in order.
    script: VecDeque<Answer>,
    /// The answer once the script is used up.
    otherwise: Answer,
    /// Held requests: their index in `requests` and how to answer them.
    held: Vec<(usize, oneshot::Sender<u16>)>,
}

impl Receiver {
    /// A receiver on a free loopback port answering 200 unless scripted;
    /// also its URL (`http://127.0.0.1:PORT`).
    pub async fn start() -> (Receiver, String) {
        Self::start_with(Answer::Status(200)).await
    }

    /// A receiver on a free loopback port answering `otherwise` unless scripted.
    pub async fn start_with(otherwise: Answer) -> (Receiver, String) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let receiver = Self::serve(listener, otherwise);
        let url = receiver.url.clone();
        (receiver, url)
    }

    /// A receiver on `listener` (e.g. a port that was closed until now).
    pub fn serve(listener: TcpListener, otherwise: Answer) -> Receiver {
        let addr = listener.local_addr().expect("receiver address");
        let receiver = Receiver {
            state: Arc::new(Mutex::new(State {
                requests: Vec::new(),
                script: VecDeque::new(),
                otherwise,
                held: Vec::new(),
            })),
            url: format!("http://{addr}"),
        };
        let state = receiver.state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    let request = Received {
                        method,
                        uri,
                        headers,
                        body,
                        answered: None,
                    };
                    let status = answer(&state, request).await;
                    (
                        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        RECEIVER_ANSWER,
                    )
                }
            },
        );
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the test receiver stopped: {error}");
            }
        });
        receiver
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next requests are answered these statuses, in order.
    pub fn answer(&self, statuses: &[u16]) {
        self.lock()
            .script
            .extend(statuses.iter().map(|s| Answer::Status(*s)));
    }

    /// What the requests past the script get from now on.
    pub fn otherwise(&self, answer: Answer) {
        self.lock().otherwise = answer;
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Received> {
        self.lock().requests.clone()
    }

    /// The requests held and not released yet, oldest first.
    pub fn held(&self) -> Vec<Received> {
        let state = self.lock();
        state
            .held
            .iter()
            .map(|(index, _)| state.requests[*index].clone())
            .collect()
    }

    /// Answers every held request `status` (those whose sender is still
    /// waiting); later requests follow the script as before.
    pub fn release_held(&self, status: u16) {
        let mut state = self.lock();
        for (index, answer) in std::mem::take(&mut state.held) {
            if answer.send(status).is_ok() {
                state.requests[index].answered = Some(status);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A test that panicked while holding the lock has failed already.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records `request` and decides its answer in one step, so that what
/// `requests()` shows is never half-updated.
async fn answer(state: &Mutex<State>, mut request: Received) -> u16 {
    let released = {
        let mut state = lock(state);
        let answer = state.script.pop_front().unwrap_or(state.otherwise);
        match answer {
            Answer::Status(status) => {
                request.answered = Some(status);
                state.requests.push(request);
                return status;
            }
            Answer::Hang => {
                state.requests.push(request);
                None
            }
            Answer::Hold => {
                let (release, released) = oneshot::channel();
                let index = state.requests.len();
                state.requests.push(request);
                state.held.push((index, release));
                Some(released)
            }
        }
    };
    match released {
        Some(released) => match released.await {
            Ok(status) => status,
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
