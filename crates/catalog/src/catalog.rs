//! The immutable [`Catalog`]: every peripheral type, looked up by name or by Smart Device id.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::device::DeviceType;
use crate::error::LoadError;
use crate::schema;
use pitcrew_sdp::Uid;

/// The shipped catalog, compiled in so that every binary runs without a file.
pub const EMBEDDED_YAML: &str = include_str!("../../../catalog/devices.yaml");

/// The largest catalog file loaded: 1 MiB, over a hundred times the shipped catalog (a
/// robot has tens of device types, each a few lines), and small enough that the parsed
/// catalog in each process of the suite stays around 25 MiB at worst.
pub const MAX_CATALOG_BYTES: u64 = 1 << 20;

/// The origin named in errors about the embedded catalog.
pub const EMBEDDED_ORIGIN: &str = "catalog/devices.yaml (embedded)";

/// A validated, immutable set of peripheral types.
///
/// Types are held in `Arc`s so that long-lived handles (shared-memory buffers) can keep
/// their type without borrowing the catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    origin: String,
    types: Vec<Arc<DeviceType>>,
    by_name: HashMap<String, usize>,
    by_id: HashMap<u16, usize>,
}

impl Catalog {
    /// The shipped `catalog/devices.yaml`, parsed once per process.
    pub fn embedded() -> &'static Catalog {
        static EMBEDDED: OnceLock<Catalog> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            // Invariant: the embedded text is the shipped catalog, which the test
            // `shipped_catalog_loads_and_matches_the_spec` loads on every CI run, so a
            // failure here is a build that skipped its tests.
            #[allow(clippy::expect_used)]
            Catalog::from_yaml_str(EMBEDDED_YAML, EMBEDDED_ORIGIN)
                .expect("the embedded catalog is validated by the test suite")
        })
    }

    /// Loads and validates a catalog file.
    ///
    /// # Errors
    /// [`LoadError::Io`] when the file cannot be read; otherwise as
    /// [`Catalog::from_yaml_str`].
    pub fn load(path: impl AsRef<Path>) -> Result<Catalog, LoadError> {
        use std::io::Read;
        let path = path.as_ref();
        let io = |source| LoadError::Io {
            file: path.to_owned(),
            source,
        };
        let too_large = |size| LoadError::TooLarge {
            file: path.to_owned(),
            size,
            max: MAX_CATALOG_BYTES,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size > MAX_CATALOG_BYTES {
            return Err(too_large(size));
        }
        // The size is checked again as read: a file growing meanwhile (or a FIFO) is cut.
        let mut text = String::new();
        file.take(MAX_CATALOG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_CATALOG_BYTES {
            return Err(too_large(text.len() as u64));
        }
        Catalog::from_yaml_str(&text, &path.display().to_string())
    }

    /// Validates catalog text; `origin` names it in error messages.
    ///
    /// # Errors
    /// [`LoadError::Syntax`] for malformed YAML and [`LoadError::Invalid`] for any rule of
    /// the spec, naming the line and the key.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Catalog, LoadError> {
        let types: Vec<Arc<DeviceType>> = schema::load_types(text, origin)?
            .into_iter()
            .map(Arc::new)
            .collect();
        let by_name = types
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name().to_owned(), i))
            .collect();
        let by_id = types
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.device_id().map(|id| (id, i)))
            .collect();
        Ok(Catalog {
            origin: origin.to_owned(),
            types,
            by_name,
            by_id,
        })
    }

    /// Where the catalog came from (a path, or the embedded origin).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Every type, in file order.
    pub fn types(&self) -> impl Iterator<Item = &Arc<DeviceType>> {
        self.types.iter()
    }

    /// Number of types.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True for an empty catalog.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Looks a type up by name (`polar-bear`).
    pub fn get(&self, name: &str) -> Option<&Arc<DeviceType>> {
        self.by_name.get(name).map(|i| &self.types[*i])
    }

    /// Looks a Smart Device type up by its device id.
    pub fn by_device_id(&self, id: u16) -> Option<&Arc<DeviceType>> {
        self.by_id.get(&id).map(|i| &self.types[*i])
    }

    /// The type of the device with this UID (from the UID's device-id field).
    pub fn type_of(&self, uid: Uid) -> Option<&Arc<DeviceType>> {
        self.by_device_id(uid.device_id())
    }
}
