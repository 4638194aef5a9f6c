//! Errors that carry the path they are about.
//!
//! The library reports problems as values of [`Error`]: each names the path
//! (as the user would type it) and says what is wrong there. Binaries wrap them
//! in `anyhow` and choose whether a problem stops the run or is reported while
//! the walk goes on.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A problem with one path of the storage tree (or of an input file).
#[derive(Debug)]
pub struct Error {
    path: PathBuf,
    kind: ErrorKind,
}

/// What is wrong at the path.
#[derive(Debug)]
pub enum ErrorKind {
    /// Reading, listing or deleting failed.
    Io(io::Error),
    /// A `link` file that should hold a digest is empty or holds something else.
    BadLink(String),
    /// A `link` file is expected here but missing (a tag without `current/link`).
    MissingLink,
    /// A blob directory without its `data` file.
    MissingData,
    /// A name on disk that breaks the registry's naming rules.
    BadName(String),
    /// A manifest that cannot be used: not JSON, wrong digest, bad fields.
    BadManifest(String),
    /// Something other than a regular file where a file is read: says what
    /// it is ("a FIFO", "a directory"); it is never opened for reading.
    NotRegular(&'static str),
    /// A symbolic link in the tree: never followed.
    Symlink,
    /// A directory named for a digest algorithm no tool here knows: kept,
    /// and so is what its links name ([`crate::layout::Store::aliases`]).
    /// Reported as a warning: it stops nothing but what it concerns.
    UnknownAlgorithm,
    /// An object larger than the reader's limit (a link file longer than
    /// any digest, a manifest over the registry's maximum): not loaded.
    TooLarge(u64),
    /// A storage operation failed, as the backend classified it
    /// ([`Failure`]), said in the backend's words (an object store's
    /// answer: a status, a timeout, a refused credential).
    Storage(Failure, String),
    /// A trash directory that cannot be used, and why (the command line
    /// names its flag).
    BadTrash(String),
    /// A trash asked of a backend that has none (object storage: a bucket
    /// has no rename).
    NoTrash,
    /// Anything else, said in words.
    Other(String),
}

/// What kind of failure a storage operation met, whatever the backend: the
/// one classification every layer reads ([`Error::failure`]) and none
/// reinterprets. The filesystem's I/O errors map to it by their
/// [`io::ErrorKind`]; an object store's by its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Not there (where absence is not simply `Ok(None)`).
    NotFound,
    /// Something other than a regular file or object where one is read
    /// (a directory, a FIFO, a symbolic link).
    NotRegular,
    /// Refused: permissions, credentials, a signature the server rejects.
    Permission,
    /// Throttling, a server error, a timeout or a lost connection that
    /// retries did not get past: the same request may work later.
    Transient,
    /// Larger than the reader's limit.
    TooLarge,
    /// Anything else.
    Other,
}

impl Error {
    pub fn new(path: impl Into<PathBuf>, kind: ErrorKind) -> Error {
        Error {
            path: path.into(),
            kind,
        }
    }

    pub fn io(path: impl Into<PathBuf>, err: io::Error) -> Error {
        Error::new(path, ErrorKind::Io(err))
    }

    pub fn other(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
        Error::new(path, ErrorKind::Other(msg.into()))
    }

    /// The path the problem is about.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Whether this is only worth a warning: something kept that stops
    /// nothing else ([`ErrorKind::UnknownAlgorithm`]).
    pub fn is_warning(&self) -> bool {
        matches!(self.kind, ErrorKind::UnknownAlgorithm)
    }

    /// Whether this is an I/O "not found".
    pub fn is_not_found(&self) -> bool {
        self.failure() == Failure::NotFound
    }

    /// A storage failure of kind `failure`, in the backend's words.
    pub fn storage(path: impl Into<PathBuf>, failure: Failure, msg: impl Into<String>) -> Error {
        Error::new(path, ErrorKind::Storage(failure, msg.into()))
    }

    /// What kind of storage failure this is ([`Failure::Other`] for the
    /// layout's own findings: a bad link, a bad name, a bad manifest).
    pub fn failure(&self) -> Failure {
        match &self.kind {
            ErrorKind::Io(e) => match e.kind() {
                io::ErrorKind::NotFound => Failure::NotFound,
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => Failure::Permission,
                io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted
                | io::ErrorKind::WouldBlock
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::StaleNetworkFileHandle => Failure::Transient,
                io::ErrorKind::IsADirectory => Failure::NotRegular,
                _ => Failure::Other,
            },
            ErrorKind::NotRegular(_) | ErrorKind::Symlink => Failure::NotRegular,
            ErrorKind::TooLarge(_) => Failure::TooLarge,
            ErrorKind::Storage(f, _) => *f,
            _ => Failure::Other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.kind {
            ErrorKind::Io(e) => write!(f, "{p}: {e}"),
            ErrorKind::BadLink(why) => write!(f, "{p}: bad link file: {why}"),
            ErrorKind::MissingLink => write!(f, "{p}: link file missing"),
            ErrorKind::MissingData => write!(f, "{p}: blob directory without a data file"),
            ErrorKind::BadName(why) => write!(f, "{p}: {why}"),
            ErrorKind::BadManifest(why) => write!(f, "{p}: bad manifest: {why}"),
            ErrorKind::NotRegular(what) => write!(f, "{p}: not a regular file but {what}; not read"),
            ErrorKind::Symlink => write!(f, "{p}: symbolic link in the storage tree; not followed"),
            ErrorKind::UnknownAlgorithm => write!(
                f,
                "{p}: a digest algorithm no tool here knows (the registry accepts sha256, sha384 \
                 and sha512): kept, with every blob its links name"
            ),
            ErrorKind::TooLarge(limit) => write!(f, "{p}: larger than {limit} bytes"),
            ErrorKind::Storage(_, why) => write!(f, "{p}: {why}"),
            ErrorKind::BadTrash(why) => write!(f, "{p}: {why}"),
            ErrorKind::NoTrash => write!(f, "{p}: no trash on object storage (a bucket has no rename)"),
            ErrorKind::Other(why) => write!(f, "{p}: {why}"),
        }
    }
}

/// No `source()`: Display already ends with the I/O error, and a source would
/// make `{err:#}` (how the tools print errors) say it twice.
impl std::error::Error for Error {}
