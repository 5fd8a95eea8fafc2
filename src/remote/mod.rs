//! Modules served over HTTP: an asset source backed by ehttp, polled for
//! changes, with a disk cache of the last verified copy and embedded
//! defaults to fall back on.
//!
//! [`RemoteSource`] registers such a source; the [`RemoteModules`] resource
//! shows each download's state ([`RemoteModuleStatus`]: where the module
//! was served from, [`ServedFrom`], and the last [`RemoteError`]).
//!
//! `fetch` makes one bounded download; `poll` asks the server what changed.
//! Besides Bevy and ehttp, this depends only on `trust` and `files`.

mod fetch;
mod poll;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bevy::asset::AssetApp;
use bevy::asset::io::{
    AssetReader, AssetReaderError, AssetSourceBuilder, AssetSourceId, PathStream, Reader, VecReader,
};
use bevy::log::{info, warn};
use bevy::prelude::{App, Resource};
use thiserror::Error;

use self::fetch::{Downloads, Fetched, Validators, received};
use crate::files::replace_file;
use crate::source::{ModuleOrigin, ServedOrigins};
use crate::trust::{ModuleTrust, SignatureError, signature_path};

/// The largest `.sig` file a remote source downloads.
pub const MAX_SIGNATURE_BYTES: usize = 4096;

/// Why a remote module could not be fetched or was not used.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteError {
    /// No connection: the server is down, the name does not resolve, ...
    #[error("{url} is unreachable: {cause}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What the HTTP client said.
        cause: String,
    },
    /// The download took longer than the source's timeout.
    #[error("{url} took longer than {after:?}")]
    TimedOut {
        /// The URL.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// The download was cut off at the source's size limit.
    #[error("{url} is larger than the limit of {limit} bytes, so its download was cut off")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The server answered with an error status (404 included).
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The server's copy did not pass the trust policy.
    #[error("{url} was refused: {error}")]
    Refused {
        /// The module's URL.
        url: String,
        /// Why.
        error: SignatureError,
    },
}

/// Where the copy of a remote module that passed the trust policy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServedFrom {
    /// The server.
    Server,
    /// The disk cache of the last verified copy.
    Cache,
    /// The default module built into the game.
    Embedded,
}

/// The download state of one remote module, for debug panels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteModuleStatus {
    /// The module's URL.
    pub url: String,
    /// A download of it is under way.
    pub in_flight: bool,
    /// Bytes received by the current or last download.
    pub bytes_received: u64,
    /// Where the last copy that passed the trust policy came from: what
    /// runs (a refused update leaves it as it was).
    pub served_from: Option<ServedFrom>,
    /// Why they came from the cache or the embedded default, not the server.
    pub fallback_reason: Option<RemoteError>,
    /// The last failed download or poll, cleared by the next successful
    /// download.
    pub last_error: Option<RemoteError>,
    /// When a verified copy last came from the server.
    pub last_success: Option<SystemTime>,
}

/// Every remote module's [`RemoteModuleStatus`], by `source://path`: a
/// resource, shared with the sources' download threads.
#[derive(Resource, Clone, Default)]
pub struct RemoteModules(Arc<Mutex<BTreeMap<String, RemoteModuleStatus>>>);

impl RemoteModules {
    /// The status of the module at `source://path`.
    pub fn get(&self, asset_path: &str) -> Option<RemoteModuleStatus> {
        self.lock().get(asset_path).cloned()
    }

    /// Every remote module's status, by asset path.
    pub fn all(&self) -> BTreeMap<String, RemoteModuleStatus> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RemoteModuleStatus>> {
        // Every update is a plain field write: a panic cannot leave one half-done.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, asset_path: &str, change: impl FnOnce(&mut RemoteModuleStatus)) {
        change(self.lock().entry(asset_path.to_owned()).or_default());
    }
}

/// An asset source that fetches modules from `<base url>/<path>`.
///
/// ```no_run
/// # use bevy::prelude::*;
/// # use bevy_hotwasm::prelude::*;
/// # use bevy_hotwasm::remote::RemoteSource;
/// let mut app = App::new();
/// // Before DefaultPlugins: asset sources must exist when AssetPlugin starts.
/// RemoteSource::new("https://mods.example.com/v1")
///     .cache_dir("cache/mods")
///     .fallback("hello.wasm", include_bytes!("../../assets/modules/hello.wasm"))
///     .register(&mut app, "mods");
/// app.add_plugins((DefaultPlugins, HotWasmPlugin::default()));
/// // Then: asset_server.load("mods://hello.wasm")
/// ```
///
/// Every module comes with its signature (`<path>.sig` from the same
/// server) and must pass the [`TrustPolicy`](crate::TrustPolicy): named
/// sources require signatures unless the policy says otherwise.
///
/// While asset watching is on (`AssetPlugin::watch_for_changes_override`,
/// or Bevy's `file_watcher` feature), a thread polls each loaded module
/// every [`poll_interval`](Self::poll_interval) and reloads it when the
/// module or its signature changed. A poll is one request per module,
/// conditional on the `ETag` / `Last-Modified` the server gave (comparing
/// content when it sends neither). The signature is asked for as well only
/// when the module changed, on every poll while the loader has a fallback
/// or a refused copy (a fixed signature alone can make the server's copy
/// pass), and on every tenth poll otherwise (a module re-signed without
/// changing is picked up within ten intervals).
pub struct RemoteSource {
    base_url: String,
    poll_interval: Duration,
    timeout: Duration,
    max_module_bytes: usize,
    cache_dir: Option<PathBuf>,
    fallbacks: HashMap<PathBuf, &'static [u8]>,
}

impl RemoteSource {
    /// A source for modules under `base_url`. Defaults: polled every 2 s,
    /// 30 s timeout, modules up to 32 MiB, no cache, no fallbacks.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            poll_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
            max_module_bytes: 32 * 1024 * 1024,
            cache_dir: None,
            fallbacks: HashMap::new(),
        }
    }

    /// How often the server is asked whether a loaded module changed.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long one download may take, from its request to its last byte.
    /// One timer thread per source ends the downloads that outlive it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest module downloaded; a larger one is cut off with
    /// [`RemoteError::TooLarge`].
    pub fn max_module_bytes(mut self, bytes: usize) -> Self {
        self.max_module_bytes = bytes;
        self
    }

    /// Where the last verified copy of each module (and its signature) is
    /// kept, to start from when the server is unreachable.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The module to run for `path` when neither the server nor the cache
    /// gives a verified one. Its bytes are built into the game, so they are
    /// trusted without a signature.
    pub fn fallback(mut self, path: impl Into<PathBuf>, module: &'static [u8]) -> Self {
        self.fallbacks.insert(path.into(), module);
        self
    }

    /// Registers this source as `name` (`asset_server.load("<name>://...")`)
    /// and inserts the [`RemoteModules`] and [`ModuleTrust`] resources it
    /// shares. Call it before `AssetPlugin` is added.
    pub fn register(self, app: &mut App, name: &'static str) {
        let status = app
            .world_mut()
            .get_resource_or_init::<RemoteModules>()
            .clone();
        let trust = app
            .world_mut()
            .get_resource_or_init::<ModuleTrust>()
            .clone();
        for module in self.fallbacks.values() {
            trust.write().trust_embedded(module);
        }
        let origins = app
            .world_mut()
            .get_resource_or_init::<ServedOrigins>()
            .clone();
        let downloads = Downloads::start(name, self.timeout);
        let remote = Arc::new(Remote {
            name,
            downloads,
            settings: self,
            status,
            trust,
            origins,
            served: Mutex::default(),
        });
        let watched = remote.clone();
        app.register_asset_source(
            name,
            AssetSourceBuilder::new(move || Box::new(RemoteReader(remote.clone())))
                .with_watcher(move |events| poll::watch(watched.clone(), events)),
        );
    }
}

/// What a source last handed to the loader for one module.
#[derive(Clone)]
struct Snapshot {
    module: Vec<u8>,
    signature: Option<Vec<u8>>,
    from: ServedFrom,
    /// It passed the trust policy: false only for a refused update from the
    /// server, handed out for the loader to refuse.
    verified: bool,
}

/// One registered source: its settings, the downloads it makes, and what
/// it handed out.
struct Remote {
    name: &'static str,
    downloads: Downloads,
    settings: RemoteSource,
    status: RemoteModules,
    trust: ModuleTrust,
    origins: ServedOrigins,
    served: Mutex<HashMap<PathBuf, Snapshot>>,
}

impl Remote {
    fn url(&self, path: &Path) -> String {
        let path: Vec<_> = path.iter().map(|part| part.to_string_lossy()).collect();
        format!("{}/{}", self.settings.base_url, path.join("/"))
    }

    fn asset_path(&self, path: &Path) -> String {
        format!("{}://{}", self.name, path.display())
    }

    fn source_id(&self) -> AssetSourceId<'static> {
        AssetSourceId::Name(self.name.into())
    }

    /// Downloads `path` and its signature (none on a 404).
    async fn download(&self, path: &Path) -> Result<(Vec<u8>, Option<Vec<u8>>), RemoteError> {
        let (url, asset_path) = (self.url(path), self.asset_path(path));
        let progress = {
            let (status, asset_path) = (self.status.clone(), asset_path.clone());
            move |bytes| status.update(&asset_path, |status| status.bytes_received = bytes)
        };
        let none = Validators::default();
        let module = self
            .downloads
            .get(&url, &none, self.settings.max_module_bytes, progress);
        let module = match received(&url, module.recv().await)? {
            Fetched::Body(bytes, _) => bytes,
            Fetched::NotFound => return Err(RemoteError::Status { url, status: 404 }),
            // An answer to a request that asked for nothing conditional.
            Fetched::NotModified => return Err(RemoteError::Status { url, status: 304 }),
        };
        let signature_url = self.url(&signature_path(path));
        let signature = self
            .downloads
            .get(&signature_url, &none, MAX_SIGNATURE_BYTES, |_| {});
        match received(&signature_url, signature.recv().await)? {
            Fetched::Body(bytes, _) => Ok((module, Some(bytes))),
            Fetched::NotFound => Ok((module, None)),
            Fetched::NotModified => Err(RemoteError::Status {
                url: signature_url,
                status: 304,
            }),
        }
    }

    /// What to hand the loader for `path`: the server's copy when it
    /// verifies; otherwise, on a first load or when the server gave nothing,
    /// the cache or the embedded default; otherwise the server's copy, for
    /// the loader to refuse while the running generation carries on.
    async fn module(&self, path: &Path) -> Result<Vec<u8>, AssetReaderError> {
        let asset_path = self.asset_path(path);
        self.status.update(&asset_path, |status| {
            status.url = self.url(path);
            status.in_flight = true;
            status.bytes_received = 0;
        });
        let downloaded = self.download(path).await;
        let first_load = !self.lock_served().contains_key(path);
        let (failure, server_copy) = match downloaded {
            Ok((module, signature)) => {
                let verdict =
                    self.trust
                        .read()
                        .verify(&self.source_id(), &module, signature.as_deref());
                let copy = Snapshot {
                    module,
                    signature,
                    from: ServedFrom::Server,
                    verified: verdict.is_ok(),
                };
                match verdict {
                    Ok(_) => {
                        self.store_in_cache(path, &copy);
                        (None, Some(copy))
                    }
                    Err(error) => (
                        Some(RemoteError::Refused {
                            url: self.url(path),
                            error,
                        }),
                        Some(copy),
                    ),
                }
            }
            Err(error) => (Some(error), None),
        };
        let fallback = match &failure {
            Some(_) if first_load || server_copy.is_none() => self.fallback(path),
            _ => None,
        };
        let snapshot = fallback.clone().or(server_copy);
        self.status.update(&asset_path, |status| {
            status.in_flight = false;
            if failure.is_none() {
                status.last_success = Some(SystemTime::now());
            }
            status.last_error.clone_from(&failure);
            match (&failure, &fallback) {
                (None, _) => {
                    status.served_from = Some(ServedFrom::Server);
                    status.fallback_reason = None;
                }
                (Some(reason), Some(fallback)) => {
                    status.served_from = Some(fallback.from);
                    status.fallback_reason = Some(reason.clone());
                }
                // A refused update: the loader will refuse it too, and what
                // runs stays as it was.
                (Some(_), None) => {}
            }
        });
        let Some(snapshot) = snapshot else {
            let error = failure.map_or_else(|| "no module".to_owned(), |error| error.to_string());
            warn!("{asset_path}: {error}, and there is no cached or embedded copy");
            return Err(AssetReaderError::Io(Arc::new(std::io::Error::other(error))));
        };
        if let (Some(fallback), Some(reason)) = (&fallback, &failure) {
            warn!(
                "{asset_path}: running the {:?} copy because {reason}",
                fallback.from
            );
        }
        let origin = match snapshot.from {
            ServedFrom::Server => ModuleOrigin::Server(self.url(path)),
            ServedFrom::Cache => ModuleOrigin::Cache,
            ServedFrom::Embedded => ModuleOrigin::Embedded,
        };
        self.origins.record(asset_path, origin);
        let module = snapshot.module.clone();
        self.lock_served().insert(path.to_owned(), snapshot);
        Ok(module)
    }

    fn lock_served(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Snapshot>> {
        self.served.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The signature handed out with the module at `module`.
    fn signature(&self, module: &Path) -> Result<Vec<u8>, AssetReaderError> {
        self.lock_served()
            .get(module)
            .and_then(|snapshot| snapshot.signature.clone())
            .ok_or_else(|| AssetReaderError::NotFound(signature_path(module)))
    }

    /// The cached copy when it still verifies, else the embedded default.
    fn fallback(&self, path: &Path) -> Option<Snapshot> {
        let cached = self.settings.cache_dir.as_ref().and_then(|dir| {
            let module = std::fs::read(dir.join(path)).ok()?;
            let signature = std::fs::read(dir.join(signature_path(path))).ok();
            self.trust
                .read()
                .verify(&self.source_id(), &module, signature.as_deref())
                .ok()?;
            Some(Snapshot {
                module,
                signature,
                from: ServedFrom::Cache,
                verified: true,
            })
        });
        cached.or_else(|| {
            let module = self.settings.fallbacks.get(path)?;
            Some(Snapshot {
                module: module.to_vec(),
                signature: None,
                from: ServedFrom::Embedded,
                verified: true,
            })
        })
    }

    /// Keeps a verified copy for starts without the server, written so a
    /// crash never leaves half a module.
    fn store_in_cache(&self, path: &Path, copy: &Snapshot) {
        let Some(dir) = &self.settings.cache_dir else {
            return;
        };
        let write = |relative: &Path, bytes: Option<&[u8]>| -> std::io::Result<()> {
            let target = dir.join(relative);
            let Some(bytes) = bytes else {
                return match std::fs::remove_file(&target) {
                    Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
                    _ => Ok(()),
                };
            };
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut temp = target.clone().into_os_string();
            temp.push(".tmp");
            replace_file(Path::new(&temp), &target, bytes)
        };
        let written = write(&signature_path(path), copy.signature.as_deref())
            .and_then(|()| write(path, Some(&copy.module)));
        match written {
            Ok(()) => info!("{}: cached the verified copy", self.asset_path(path)),
            Err(error) => warn!("{}: could not cache it: {error}", self.asset_path(path)),
        }
    }
}

struct RemoteReader(Arc<Remote>);

impl AssetReader for RemoteReader {
    async fn read<'a>(&'a self, path: &'a Path) -> Result<impl Reader + 'a, AssetReaderError> {
        let bytes = match path.to_str().and_then(|path| path.strip_suffix(".sig")) {
            Some(module) => self.0.signature(Path::new(module))?,
            None => self.0.module(path).await?,
        };
        Ok(VecReader::new(bytes))
    }

    /// Remote modules have no `.meta` files: the loader's defaults apply.
    async fn read_meta<'a>(&'a self, path: &'a Path) -> Result<impl Reader + 'a, AssetReaderError> {
        Err::<VecReader, _>(AssetReaderError::NotFound(path.to_owned()))
    }

    async fn read_directory<'a>(
        &'a self,
        path: &'a Path,
    ) -> Result<Box<PathStream>, AssetReaderError> {
        Err(AssetReaderError::NotFound(path.to_owned()))
    }

    async fn is_directory<'a>(&'a self, _path: &'a Path) -> Result<bool, AssetReaderError> {
        Ok(false)
    }
}
