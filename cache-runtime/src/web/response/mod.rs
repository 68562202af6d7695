//! [`ResponseCacheLayer`]: a tower layer that caches whole GET responses of the routes it
//! wraps, on either store, following the rules of a shared cache.

mod answer;
mod rules;
mod stored;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::MatchedPath;
use axum::http::header::{
    AGE, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, ETAG, EXPIRES, IF_NONE_MATCH, VARY,
};
use axum::http::{request, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use axum::BoxError;
use md5::{Digest as _, Md5};
use tower_layer::Layer;
use tower_service::Service;

use self::answer::Answer;
use self::rules::Plan;
use self::stored::{Entry, Stored};
use crate::cache::Cache;
use crate::call::{self, Reusable, ReuseByClone as _, Spec};
use crate::counters::Count;
use crate::default::{self, Lent};
use crate::keys;
use crate::throttle::throttled;

/// The header every response that passed the layer carries: `HIT` (served from the cache),
/// `MISS` (the handler ran) or `SKIP` (the cache was not used: a write, a request the layer
/// may not answer from a shared cache, a client's `no-cache`, or a store that could not be
/// asked).
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Who a request is for, as the application tells it (see [`ResponseCacheLayer::vary_by`]).
type Identity = Arc<dyn Fn(&request::Parts) -> Option<String> + Send + Sync>;

/// A tower [`Layer`] that caches whole GET (and HEAD) responses of the routes it wraps, in a
/// [`Cache`] (the process default unless [`cache`](Self::cache) names one), under one
/// namespace, with the rules of a shared cache:
///
/// - **Key**: method, host, path and the query's parameters sorted (their order does not
///   matter), the values of the request headers named with
///   [`vary_by_header`](Self::vary_by_header), and the identity [`vary_by`](Self::vary_by)
///   derives from the request. A response's own `Vary` is honoured: each combination of the
///   values of the headers it names is an entry of its own; `Vary: *` is not stored.
/// - **Safe by default**: a request with `Authorization` or `Cookie` is neither answered from
///   the cache nor stored, unless `vary_by` gives it an identity; a response that is not 2xx,
///   sets a cookie, or says `Cache-Control: private` or `no-store` is passed on and not
///   stored, and `Set-Cookie` is never replayed. A body larger than
///   [`max_body_size`](Self::max_body_size) (1 MiB), or a streaming one, passes through
///   untouched and is not stored.
/// - **`X-Cache: HIT | MISS | SKIP`** on every response. A client's `Cache-Control:
///   no-cache` skips the lookup and replaces the entry (`SKIP`; see
///   [`obey_client_no_cache`](Self::obey_client_no_cache)); `no-store` neither reads nor
///   writes.
/// - **Validators**: a stored response carries a strong `ETag` derived from its body (the
///   handler's own, if it set one), the same from every process, and a request whose
///   `If-None-Match` matches gets `304 Not Modified`. A hit carries `Age`; unless the handler
///   set `Cache-Control`, responses say `Cache-Control: no-cache`, so that browsers and CDNs
///   revalidate (a cheap 304) instead of keeping a copy a write on the server cannot reach
///   ([`client_max_age`](Self::client_max_age) sets a `max-age` instead).
/// - **Writes** (POST, PUT, PATCH, DELETE) that answer 2xx clear the stored GETs of their
///   path and of its parents, with every query, host, user and variant: a write to
///   `/spaces/1/items/2` clears `/spaces/1/items/2`, `/spaces/1/items`, `/spaces/1` and
///   `/spaces`. Through the namespace's index (never a scan of the keyspace), and fenced like
///   every clear: a GET that began before the write stores nothing after it. A write that
///   fails clears nothing; a clear that fails is logged and counted
///   (`invalidation_failures`), and the write's response is unchanged.
/// - **Single-flight**: concurrent misses of one response in a process run the handler once;
///   with [`lock`](Self::lock), once across processes.
/// - **Fail-open**: when the store cannot be asked, the handler answers (`X-Cache: SKIP`).
/// - **Metrics**: every response is counted in `cache_http_responses_total` and timed in
///   `cache_http_seconds` through the `metrics` facade, labelled by `namespace`, `route` (the
///   route's [`MatchedPath`], such as `/spaces/{id}`, never the raw path, so that the number
///   of label values stays bounded; `-` outside a router) and `x_cache`. The engine's
///   per-namespace counters (`Cache::stats`, `cache_hits_total`) count the layer's lookups too.
///
/// Entries are kept in a versioned JSON envelope, so a release that changes the format reads
/// older entries as misses.
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use cache_runtime::web::ResponseCacheLayer;
///
/// let app: Router = Router::new()
///     .route("/articles", get(|| async { "all the articles" }))
///     .layer(
///         ResponseCacheLayer::new("pages")
///             .ttl(Duration::from_secs(30))
///             .vary_by_header(axum::http::header::ACCEPT_LANGUAGE),
///     );
/// ```
#[derive(Clone)]
pub struct ResponseCacheLayer {
    config: Config,
    /// What the services of this layer share, made once for all the routes it wraps.
    shared: Arc<OnceLock<Arc<Shared>>>,
}

#[derive(Clone)]
struct Config {
    namespace: String,
    ttl: Duration,
    cache: Option<Cache>,
    headers: Vec<HeaderName>,
    identity: Option<Identity>,
    obey_no_cache: bool,
    client_max_age: Option<Duration>,
    max_body: usize,
    lock: bool,
}

impl ResponseCacheLayer {
    /// A layer storing responses under `namespace` for 60 seconds. A namespace containing
    /// `:` is refused: the layer then passes every request on uncached (`X-Cache: SKIP`)
    /// and logs why at error level.
    pub fn new(namespace: impl Into<String>) -> Self {
        ResponseCacheLayer {
            config: Config {
                namespace: namespace.into(),
                ttl: Duration::from_secs(60),
                cache: None,
                headers: Vec::new(),
                identity: None,
                obey_no_cache: true,
                client_max_age: None,
                max_body: 1 << 20,
                lock: false,
            },
            shared: Arc::default(),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self.shared = Arc::default();
        self
    }

    /// How long a response is kept (whole seconds, at least one; 60 by default).
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|c| c.ttl = ttl)
    }

    /// The cache to keep responses in, instead of the process default.
    pub fn cache(self, cache: Cache) -> Self {
        self.with(|c| c.cache = Some(cache))
    }

    /// Adds the values of request header `name` to the key (`Accept-Language`, say).
    pub fn vary_by_header(self, name: HeaderName) -> Self {
        self.with(|c| c.headers.push(name))
    }

    /// Keys each request by who it is for, as `identity` derives it from the request's parts
    /// (for example the user an auth middleware put into `parts.extensions`): pages are then
    /// kept per identity, never shown to another, and requests with `Authorization` or
    /// `Cookie` may be answered from the cache. A request with credentials for which
    /// `identity` gives `None` is passed on uncached (`SKIP`); one without credentials and
    /// without an identity shares the anonymous page.
    ///
    /// ```
    /// use cache_runtime::web::ResponseCacheLayer;
    ///
    /// #[derive(Clone)]
    /// struct User(u64);
    ///
    /// let layer = ResponseCacheLayer::new("pages")
    ///     .vary_by(|parts| parts.extensions.get::<User>().map(|user| user.0.to_string()));
    /// ```
    pub fn vary_by(
        self,
        identity: impl Fn(&request::Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.with(|c| c.identity = Some(Arc::new(identity)))
    }

    /// Whether a client's `Cache-Control: no-cache` skips the lookup and recomputes the
    /// entry (on by default). Any client can then make the handler run; turn it off for
    /// pages that are expensive to make.
    pub fn obey_client_no_cache(self, obey: bool) -> Self {
        self.with(|c| c.obey_no_cache = obey)
    }

    /// Sends `Cache-Control: max-age=N` (whole seconds) with responses whose handler set no
    /// `Cache-Control`, instead of `no-cache`: clients then keep their copy that long, even
    /// after a write clears the server's.
    pub fn client_max_age(self, max_age: Duration) -> Self {
        self.with(|c| c.client_max_age = Some(max_age))
    }

    /// Bodies larger than this many bytes (1 MiB by default) pass through and are not stored.
    /// The cache's own [`max_value_size`](crate::CacheConfig::max_value_size) bounds what
    /// is stored too (the stored entry holds the body and its headers).
    pub fn max_body_size(self, bytes: usize) -> Self {
        self.with(|c| c.max_body = bytes)
    }

    /// Takes the cache's cross-process lock around a miss (on Redis), so that replicas
    /// missing one page at once run its handler once.
    pub fn lock(self, lock: bool) -> Self {
        self.with(|c| c.lock = lock)
    }

    fn shared(&self) -> Arc<Shared> {
        Arc::clone(
            self.shared
                .get_or_init(|| Arc::new(Shared::new(self.config.clone()))),
        )
    }
}

impl fmt::Debug for ResponseCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCacheLayer")
            .field("namespace", &self.config.namespace)
            .field("ttl", &self.config.ttl)
            .field("headers", &self.config.headers)
            .field("vary_by", &self.config.identity.is_some())
            .field("obey_client_no_cache", &self.config.obey_no_cache)
            .field("client_max_age", &self.config.client_max_age)
            .field("max_body_size", &self.config.max_body)
            .field("lock", &self.config.lock)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ResponseCacheLayer {
    type Service = ResponseCache<S>;

    fn layer(&self, inner: S) -> ResponseCache<S> {
        ResponseCache {
            inner,
            shared: self.shared(),
        }
    }
}

/// The service [`ResponseCacheLayer`] wraps a route in.
#[derive(Clone)]
pub struct ResponseCache<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> fmt::Debug for ResponseCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("namespace", &self.shared.config.namespace)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ResponseCache<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
    ResB: HttpBody<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // The service made ready goes with the request; a clone takes its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        let started = Instant::now();
        let route = request.extensions().get::<MatchedPath>().cloned();
        // What the request is is found before any future is made: a read's future then
        // holds the request once, and nothing of the other kinds of requests.
        match shared.prepare(inner, request) {
            Prepared::Read(read) => Box::pin(async move {
                let response = shared.read(read).await?;
                shared.measured(route.as_ref(), &response, started);
                Ok(response)
            }),
            Prepared::Pass(inner, request, write) => Box::pin(async move {
                let response = shared.pass(inner, request, write).await?;
                shared.measured(route.as_ref(), &response, started);
                Ok(response)
            }),
        }
    }
}

/// A request, sorted by what the layer does with it.
enum Prepared<S, ReqB> {
    /// A GET or HEAD the cache may answer.
    Read(Read<S, ReqB>),
    /// Passed on; with the spec and path of a write whose success clears that path.
    Pass(S, Request<ReqB>, Option<(&'static Spec, String)>),
}

/// A GET or HEAD on its way through the engine.
struct Read<S, ReqB> {
    spec: &'static Spec,
    /// Its key segment.
    primary: String,
    /// Its `If-None-Match` values.
    validators: Vec<HeaderValue>,
    /// The handler and the request, until the handler runs.
    held: Option<(S, Request<ReqB>)>,
    head: bool,
    fresh: bool,
}

/// The most routes whose metrics are labelled apart; later ones are labelled `-`.
const MAX_ROUTES: usize = 1024;

static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The metrics' keys of one route, by `X-Cache` (HIT, MISS, SKIP).
struct RouteKeys {
    responses: [metrics::Key; 3],
    seconds: [metrics::Key; 3],
}

impl RouteKeys {
    fn new(namespace: &str, route: &str) -> Self {
        let key = |name: &'static str, how: &'static str| {
            metrics::Key::from_parts(
                name,
                vec![
                    metrics::Label::new("namespace", namespace.to_owned()),
                    metrics::Label::new("route", route.to_owned()),
                    metrics::Label::new("x_cache", how),
                ],
            )
        };
        let by = |name| [key(name, "HIT"), key(name, "MISS"), key(name, "SKIP")];
        RouteKeys {
            responses: by("cache_http_responses_total"),
            seconds: by("cache_http_seconds"),
        }
    }
}

/// What a layer's services share.
struct Shared {
    config: Config,
    /// What the engine is told of every call; `None` for a refused namespace. Made once per
    /// layer and kept for the process's life: the engine keys its counters' slot and hot sets
    /// by its address.
    spec: Option<&'static Spec>,
    /// `Cache-Control` for responses whose handler set none.
    client_cache_control: HeaderValue,
    /// The metrics' keys of each route seen.
    routes: std::sync::RwLock<std::collections::HashMap<Box<str>, RouteKeys>>,
}

/// `X-Cache` values.
const HIT: HeaderValue = HeaderValue::from_static("HIT");
const MISS: HeaderValue = HeaderValue::from_static("MISS");
const SKIP: HeaderValue = HeaderValue::from_static("SKIP");

impl Shared {
    fn new(config: Config) -> Self {
        let spec = match keys::check_namespace(&config.namespace) {
            Ok(()) => Some(&*Box::leak(Box::new(Spec {
                function: "cache_runtime::web::ResponseCacheLayer",
                namespace: Box::leak(config.namespace.clone().into_boxed_str()),
                expire: config.ttl.as_secs().max(1),
                lock: config.lock,
                ..Spec::DEFAULT
            }))),
            Err(why) => {
                tracing::error!(
                    namespace = config.namespace,
                    "ResponseCacheLayer: {why}; every request passes through uncached"
                );
                None
            }
        };
        let client_cache_control = match config.client_max_age {
            Some(age) => HeaderValue::from_str(&format!("max-age={}", age.as_secs()))
                .unwrap_or(HeaderValue::from_static("no-cache")),
            None => HeaderValue::from_static("no-cache"),
        };
        Shared {
            config,
            spec,
            client_cache_control,
            routes: Default::default(),
        }
    }

    /// Counts and times a response in the `metrics` facade. The metrics' keys of a route are
    /// made once; each response asks the recorder installed now (none: nothing happens).
    fn measured(&self, route: Option<&MatchedPath>, response: &Response<Body>, started: Instant) {
        let route = route.map_or("-", MatchedPath::as_str);
        let how = match response.headers().get(X_CACHE).map(HeaderValue::as_bytes) {
            Some(b"HIT") => 0,
            Some(b"MISS") => 1,
            _ => 2,
        };
        let elapsed = started.elapsed();
        let count = |keys: &RouteKeys| {
            metrics::with_recorder(|recorder| {
                recorder
                    .register_counter(&keys.responses[how], &METADATA)
                    .increment(1);
                recorder
                    .register_histogram(&keys.seconds[how], &METADATA)
                    .record(elapsed);
            })
        };
        if let Some(keys) = crate::sync::read(&self.routes).get(route) {
            return count(keys);
        }
        let mut routes = crate::sync::write(&self.routes);
        // Routes are the application's (MatchedPath), so few; the bound is a safeguard.
        let route = if routes.len() < MAX_ROUTES {
            route
        } else {
            "-"
        };
        let namespace = self.config.namespace.as_str();
        let keys = routes
            .entry(route.into())
            .or_insert_with(|| RouteKeys::new(namespace, route));
        count(keys)
    }

    /// What the layer does with `request`.
    fn prepare<S, ReqB>(&self, inner: S, request: Request<ReqB>) -> Prepared<S, ReqB> {
        let Some(spec) = self.spec else {
            return Prepared::Pass(inner, request, None);
        };
        let (parts, body) = request.into_parts();
        let identity = self.config.identity.as_ref().and_then(|f| f(&parts));
        let (head, fresh) =
            match rules::plan(&parts, self.config.obey_no_cache, identity.as_deref()) {
                Plan::Pass => return Prepared::Pass(inner, Request::from_parts(parts, body), None),
                Plan::Write => {
                    let path = parts.uri.path().to_owned();
                    let request = Request::from_parts(parts, body);
                    return Prepared::Pass(inner, request, Some((spec, path)));
                }
                Plan::Read { head, fresh } => (head, fresh),
            };
        let primary = self.primary_key(&parts, identity.as_deref());
        let validators = parts
            .headers
            .get_all(IF_NONE_MATCH)
            .iter()
            .cloned()
            .collect();
        Prepared::Read(Read {
            spec,
            primary,
            validators,
            held: Some((inner, Request::from_parts(parts, body))),
            head,
            // A HEAD's response has no body: it may be answered from a GET's entry, never
            // stored.
            fresh: fresh && !head,
        })
    }

    /// A request passed on (`SKIP`); a write's success clears its path.
    async fn pass<S, ReqB, ResB>(
        &self,
        inner: S,
        request: Request<ReqB>,
        write: Option<(&'static Spec, String)>,
    ) -> Result<Response<Body>, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
        ResB: HttpBody<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let response = handle(inner, request).await?;
        if let Some((spec, path)) = write.filter(|_| response.status().is_success()) {
            self.clear_path(spec, &path).await;
        }
        Ok(tagged(response, SKIP))
    }

    /// A GET or HEAD: the entry of its key, or of its variant, or the handler's response.
    async fn read<S, ReqB, ResB>(&self, mut read: Read<S, ReqB>) -> Result<Response<Body>, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
        ResB: HttpBody<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let (spec, head, fresh) = (read.spec, read.head, read.fresh);
        let answer = self
            .ask(spec, &read.primary, fresh, &mut read.held, head, None)
            .await;
        let varies = match (&answer.entry, answer.ran, &read.held) {
            (Some(Entry::Varies(names)), false, Some(_)) => Some(Arc::clone(names)),
            _ => None,
        };
        match varies {
            // Boxed, and with nothing of the first lookup kept: only pages that vary get here,
            // and the future of every read stays half the size.
            Some(names) => {
                drop(answer);
                Box::pin(self.read_variant(read, names)).await
            }
            None => self.respond(answer, head, fresh, &read.validators),
        }
    }

    /// [`read`](Self::read) of a page that varies by the request headers `names`: the entry
    /// of this request's values of them.
    async fn read_variant<S, ReqB, ResB>(
        &self,
        mut read: Read<S, ReqB>,
        names: Arc<[HeaderName]>,
    ) -> Result<Response<Body>, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
        ResB: HttpBody<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let values: Vec<Vec<u8>> = match &read.held {
            Some((_, request)) => names
                .iter()
                .map(|name| rules::header_text(request.headers(), name))
                .collect(),
            None => Vec::new(),
        };
        let key = keys::response::variant(&read.primary, values.iter().map(Vec::as_slice));
        let (spec, head, fresh) = (read.spec, read.head, read.fresh);
        let answer = self
            .ask(spec, &key, fresh, &mut read.held, head, Some(names))
            .await;
        self.respond(answer, head, fresh, &read.validators)
    }

    /// One lookup through the engine: the entry of `key`, or the handler's answer (`want`:
    /// the headers the response must vary by, at a variant's key).
    async fn ask<S, ReqB, ResB>(
        &self,
        spec: &'static Spec,
        key: &str,
        fresh: bool,
        held: &mut Option<(S, Request<ReqB>)>,
        head: bool,
        want: Option<Arc<[HeaderName]>>,
    ) -> Answer<S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
        ResB: HttpBody<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let ticket = match &self.config.cache {
            Some(cache) => call::keyed_in(cache, spec, key),
            None => call::keyed(spec, key),
        };
        let reuse = (&&Reusable::<Entry>::NEW).reuse();
        call::answer(ticket, reuse, fresh, || {
            let taken = held.take();
            self.run(taken, head, want)
        })
        .await
    }

    /// Runs the handler and tells what of its response to store.
    async fn run<S, ReqB, ResB>(
        &self,
        held: Option<(S, Request<ReqB>)>,
        head: bool,
        want: Option<Arc<[HeaderName]>>,
    ) -> Answer<S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
        ResB: HttpBody<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let Some((inner, request)) = held else {
            // Each request's handler runs once; a second run cannot be asked for.
            return Answer::passed(Ok(status(StatusCode::INTERNAL_SERVER_ERROR)));
        };
        let uri = request.uri().clone();
        let response = match handle(inner, request).await {
            Ok(response) => response,
            Err(e) => return Answer::passed(Err(e)),
        };
        if head {
            return Answer::passed(Ok(response));
        }
        let (parts, body) = response.into_parts();
        let pass = |parts, body| Answer::passed(Ok(Response::from_parts(parts, body)));
        if let Some(why) = rules::unstorable(&uri, &parts, self.config.max_body) {
            tracing::debug!(%uri, "response not stored: {why}");
            return pass(parts, body);
        }
        let names = rules::vary(&parts.headers).unwrap_or_default();
        match &want {
            None if !names.is_empty() => {
                // Each combination of those headers' values gets an entry of its own, made
                // by the next request that has it.
                let entry = Entry::Varies(names.into());
                return Answer::passed_storing(Response::from_parts(parts, body), entry);
            }
            Some(want) if want[..] != names[..] => return pass(parts, body),
            _ => {}
        }
        let size = body.size_hint();
        if size
            .upper()
            .is_none_or(|upper| upper > self.config.max_body as u64)
        {
            // Streaming, or too large: passed through as it comes, never buffered whole.
            return pass(parts, body);
        }
        let bytes = match axum::body::to_bytes(body, self.config.max_body).await {
            Ok(bytes) => bytes,
            Err(e) => {
                throttled!(warn, %uri, "the handler's response body failed: {e}");
                return Answer::passed(Ok(status(StatusCode::INTERNAL_SERVER_ERROR)));
            }
        };
        let own_etag = parts.headers.get(ETAG).cloned();
        let mut headers = HeaderMap::with_capacity(parts.headers.len());
        let mut name = None;
        for (header, value) in parts.headers {
            // `into_iter` names a header once, before its first value.
            if header.is_some() {
                name = header;
            }
            if let Some(name) = name
                .as_ref()
                .filter(|n| rules::kept_header(n) && *n != ETAG)
            {
                headers.append(name.clone(), value);
            }
        }
        let etag = own_etag.unwrap_or_else(|| etag_of(&bytes));
        Answer::stored(Entry::Response(Arc::new(Stored {
            status: parts.status,
            headers,
            body: bytes,
            etag,
            at: stored::now(),
        })))
    }

    /// The response for what the engine gave.
    fn respond<E>(
        &self,
        answer: Answer<E>,
        head: bool,
        fresh: bool,
        validators: &[HeaderValue],
    ) -> Result<Response<Body>, E> {
        let how = match (answer.unstored || fresh, answer.ran) {
            (true, _) => SKIP,
            (false, true) => MISS,
            (false, false) => HIT,
        };
        if let Some(passed) = answer.passed {
            return Ok(tagged(passed?, how));
        }
        match answer.entry {
            Some(Entry::Response(stored)) => {
                Ok(self.rebuild(stored, head, validators, answer.ran, how))
            }
            // A variant's key held a list of headers: not written by this layer.
            _ => Ok(tagged(status(StatusCode::INTERNAL_SERVER_ERROR), SKIP)),
        }
    }

    /// The response of a stored entry (`fresh`: just made by the handler).
    fn rebuild(
        &self,
        stored: Arc<Stored>,
        head: bool,
        validators: &[HeaderValue],
        fresh: bool,
        how: HeaderValue,
    ) -> Response<Body> {
        // Decoded for this call alone (a Redis hit), the parts are taken, not copied; a
        // memory store's or near-cache's copy is shared, so they are cloned (cheaply: the
        // body is reference-counted).
        let Stored {
            status: code,
            mut headers,
            body,
            etag,
            at,
        } = Arc::try_unwrap(stored).unwrap_or_else(|shared| Stored {
            status: shared.status,
            headers: shared.headers.clone(),
            body: shared.body.clone(),
            etag: shared.etag.clone(),
            at: shared.at,
        });
        headers.insert(ETAG, etag.clone());
        if !headers.contains_key(CACHE_CONTROL) {
            headers.insert(CACHE_CONTROL, self.client_cache_control.clone());
        }
        if !fresh {
            headers.insert(AGE, age_value(stored::now().saturating_sub(at)));
        }
        headers.insert(X_CACHE, how);
        if !validators.is_empty() && rules::not_modified(validators, &etag) {
            // RFC 9110 §15.4.5: what a 304 carries of the response it stands for.
            let mut kept = HeaderMap::new();
            for name in [
                ETAG,
                CACHE_CONTROL,
                CONTENT_LOCATION,
                EXPIRES,
                VARY,
                AGE,
                X_CACHE,
            ] {
                for value in headers.get_all(&name) {
                    kept.append(name.clone(), value.clone());
                }
            }
            let mut response = status(StatusCode::NOT_MODIFIED);
            *response.headers_mut() = kept;
            return response;
        }
        let body = if head {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            Body::empty()
        } else {
            Body::from(body)
        };
        let mut response = Response::new(body);
        *response.status_mut() = code;
        *response.headers_mut() = headers;
        response
    }

    /// `http:{path}:{md5 of the rest}`: what tells this GET apart from others.
    fn primary_key(&self, parts: &request::Parts, identity: Option<&str>) -> String {
        let host = rules::host(parts);
        let path = parts.uri.path();
        let query = rules::sorted_query(&parts.uri);
        let values: Vec<Vec<u8>> = self
            .config
            .headers
            .iter()
            .map(|name| rules::header_text(&parts.headers, name))
            .collect();
        // `-` and `=id` can never be confused: an identity is marked as one.
        let who = identity.map(|id| format!("={id}"));
        let who = who.as_deref().unwrap_or("-");
        let named = self.config.headers.iter().zip(&values);
        let items = [
            b"GET".as_slice(),
            host.as_bytes(),
            path.as_bytes(),
            query.as_bytes(),
        ]
        .into_iter()
        .chain([who.as_bytes()])
        .chain(named.flat_map(|(name, value)| [name.as_str().as_bytes(), value.as_slice()]));
        keys::response::request(path, items)
    }

    /// Clears the entries of `path` and its parents, after a write to it succeeded.
    async fn clear_path(&self, spec: &'static Spec, path: &str) {
        let backend = match &self.config.cache {
            Some(cache) => Some(Lent::of(cache.backend())),
            None => default::current(),
        };
        let Some(backend) = backend else {
            return;
        };
        let patterns: Vec<String> = rules::path_and_parents(path)
            .into_iter()
            .map(keys::response::path_pattern)
            .collect();
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        if let Err(e) = backend.clear_matching(spec.namespace, &patterns).await {
            backend.counters.bump(Count::InvalidationFailures);
            throttled!(
                warn,
                path,
                "ResponseCacheLayer: the write succeeded, but clearing its cached pages \
                 failed; they live until their TTL: {e}"
            );
        }
    }
}

/// The handler's response, with a body of the layer's type.
async fn handle<S, ReqB, ResB>(
    mut inner: S,
    request: Request<ReqB>,
) -> Result<Response<Body>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: HttpBody<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
    Ok(inner.call(request).await?.map(Body::new))
}

fn tagged(mut response: Response<Body>, how: HeaderValue) -> Response<Body> {
    response.headers_mut().insert(X_CACHE, how);
    response
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}

/// The `Age` header of an entry stored `secs` ago; the first ten minutes are made once.
fn age_value(secs: u64) -> HeaderValue {
    const MADE: usize = 600;
    static AGES: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let ages = AGES.get_or_init(|| (0..MADE as u64).map(HeaderValue::from).collect());
    match usize::try_from(secs).ok().and_then(|secs| ages.get(secs)) {
        // A clone shares the value's bytes.
        Some(age) => age.clone(),
        None => HeaderValue::from(secs),
    }
}

/// A strong `ETag` of a body: its MD5, quoted.
fn etag_of(body: &[u8]) -> HeaderValue {
    let sum = Md5::digest(body);
    let mut tag = String::with_capacity(34);
    tag.push('"');
    for byte in sum {
        tag.push_str(&format!("{byte:02x}"));
    }
    tag.push('"');
    HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\""))
}
