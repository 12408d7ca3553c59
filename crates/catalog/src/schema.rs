//! The catalog schema: turns the YAML tree into validated [`DeviceType`]s, enforcing every
//! rejection rule of the spec, each reported with the file, line and key path.

use std::collections::HashMap;
use std::time::Duration;

use crate::bounds::Bounds;
use crate::device::{Access, DeviceType, Param, MAX_SMART_PARAMS, MAX_SMART_PARAM_WIDTH};
use crate::error::{LoadError, LoadErrorKind as K};
use crate::param_type::ParamType;
use crate::yaml::{self, Node, NodeKind};
use pitcrew_sdp::{ScalarType, Value};

const TYPE_KEYS: &str = "device_id, sub_interval, heartbeat_interval, params";
const PARAM_KEYS: &str = "name, type, readable, writeable, subscribed, lower, upper, safe, lease";

/// The default `sub_interval` of the spec.
const DEFAULT_SUB_INTERVAL: Duration = Duration::from_millis(40);
/// The default `heartbeat_interval` of the spec.
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(250);
/// SUB_REQ carries the interval as u16 milliseconds.
const MAX_SUB_INTERVAL_S: f64 = 65.535;

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, line: usize, key: impl Into<String>, kind: K) -> LoadError {
        LoadError::Invalid {
            file: self.file.to_owned(),
            line,
            key: key.into(),
            kind,
        }
    }
}

/// One checked mapping entry: key text, key node, value node.
type Entry<'n> = (&'n str, &'n Node, &'n Node);

/// Parses and validates a catalog text; `file` names it in errors.
pub(crate) fn load_types(text: &str, file: &str) -> Result<Vec<DeviceType>, LoadError> {
    let ctx = Ctx { file };
    let root = yaml::parse(text, "a catalog").map_err(|e| LoadError::Syntax {
        file: file.to_owned(),
        line: e.line,
        message: e.message,
    })?;
    let Some(root) = root else {
        return Ok(Vec::new());
    };
    let NodeKind::Map(entries) = &root.kind else {
        return Err(ctx.err(
            root.line,
            "<root>",
            K::Expected {
                expected: "a mapping of type names",
                found: root.describe(),
            },
        ));
    };
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut ids: HashMap<u16, (String, usize)> = HashMap::new();
    let mut types = Vec::with_capacity(entries.len());
    for (key, body) in entries {
        let name = scalar_key(&ctx, key, "<root>")?;
        if let Some(first) = names.insert(name, key.line) {
            let kind = K::DuplicateTypeName {
                name: name.to_owned(),
                first_line: first,
            };
            return Err(ctx.err(key.line, name, kind));
        }
        if !is_kebab(name) {
            let kind = K::BadTypeName {
                name: name.to_owned(),
            };
            return Err(ctx.err(key.line, name, kind));
        }
        types.push(device(&ctx, name, body, &mut ids)?);
    }
    Ok(types)
}

fn scalar_key<'n>(ctx: &Ctx<'_>, key: &'n Node, path: &str) -> Result<&'n str, LoadError> {
    key.as_scalar().ok_or_else(|| {
        let kind = K::Expected {
            expected: "a scalar key",
            found: key.describe(),
        };
        ctx.err(key.line, path, kind)
    })
}

/// The entries of a mapping, refusing unknown and repeated keys.
fn entries<'n>(
    ctx: &Ctx<'_>,
    node: &'n Node,
    path: &str,
    allowed: &'static str,
) -> Result<Vec<Entry<'n>>, LoadError> {
    let NodeKind::Map(map) = &node.kind else {
        let kind = K::Expected {
            expected: "a mapping",
            found: node.describe(),
        };
        return Err(ctx.err(node.line, path, kind));
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let name = scalar_key(ctx, k, path)?;
        let key_path = format!("{path}.{name}");
        if !allowed.split(", ").any(|a| a == name) {
            return Err(ctx.err(k.line, key_path, K::UnknownKey { expected: allowed }));
        }
        if let Some(first) = seen.insert(name, k.line) {
            return Err(ctx.err(k.line, key_path, K::DuplicateKey { first_line: first }));
        }
        out.push((name, k, v));
    }
    Ok(out)
}

fn device(
    ctx: &Ctx<'_>,
    name: &str,
    body: &Node,
    ids: &mut HashMap<u16, (String, usize)>,
) -> Result<DeviceType, LoadError> {
    let mut device_id = None;
    let mut sub_interval = DEFAULT_SUB_INTERVAL;
    let mut heartbeat_interval = DEFAULT_HEARTBEAT_INTERVAL;
    let mut params_node = None;
    for (key, k, v) in entries(ctx, body, name, TYPE_KEYS)? {
        let path = format!("{name}.{key}");
        match key {
            "device_id" => {
                let id = v
                    .as_int()
                    .and_then(|i| u16::try_from(i).ok())
                    .ok_or_else(|| {
                        let kind = K::Expected {
                            expected: "a device id in 0..=65535",
                            found: v.describe(),
                        };
                        ctx.err(v.line, &path, kind)
                    })?;
                if let Some((other, first_line)) = ids.get(&id) {
                    let kind = K::DuplicateDeviceId {
                        id,
                        other: other.clone(),
                        first_line: *first_line,
                    };
                    return Err(ctx.err(k.line, path, kind));
                }
                ids.insert(id, (name.to_owned(), k.line));
                device_id = Some(id);
            }
            "sub_interval" => sub_interval = interval(ctx, v, &path, true)?,
            "heartbeat_interval" => heartbeat_interval = interval(ctx, v, &path, false)?,
            _ => params_node = Some((k, v)),
        }
    }
    let smart = device_id.is_some();
    let mut params = Vec::new();
    if let Some((k, list)) = params_node {
        let path = format!("{name}.params");
        let NodeKind::Seq(items) = &list.kind else {
            let kind = K::Expected {
                expected: "a list of params",
                found: list.describe(),
            };
            return Err(ctx.err(list.line, path, kind));
        };
        if smart && items.len() > MAX_SMART_PARAMS {
            let kind = K::TooManyParams {
                count: items.len(),
                max: MAX_SMART_PARAMS,
            };
            return Err(ctx.err(k.line, path, kind));
        }
        let mut seen = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            params.push(param(
                ctx,
                &format!("{path}[{i}]"),
                i,
                item,
                smart,
                &mut seen,
            )?);
        }
    }
    let mut ty = DeviceType {
        name: name.to_owned(),
        device_id,
        sub_interval,
        heartbeat_interval,
        params,
        fingerprint: 0,
    };
    ty.fingerprint = ty.compute_fingerprint();
    Ok(ty)
}

fn interval(ctx: &Ctx<'_>, v: &Node, path: &str, zero_ok: bool) -> Result<Duration, LoadError> {
    let secs = number(ctx, v, path)?;
    let reason = if !secs.is_finite() || secs < 0.0 {
        Some("must be a finite, non-negative number of seconds")
    } else if !zero_ok && secs == 0.0 {
        Some("must be positive")
    } else if zero_ok && secs > MAX_SUB_INTERVAL_S {
        Some("longer than the 16-bit millisecond field of SUB_REQ")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ctx.err(
            v.line,
            path,
            K::BadInterval {
                value: secs,
                reason,
            },
        )),
        None => Ok(Duration::from_secs_f64(secs)),
    }
}

fn number(ctx: &Ctx<'_>, v: &Node, path: &str) -> Result<f64, LoadError> {
    match v.as_number() {
        Some(x) if !x.is_nan() => Ok(x),
        _ => {
            let kind = K::Expected {
                expected: "a number",
                found: v.describe(),
            };
            Err(ctx.err(v.line, path, kind))
        }
    }
}

fn boolean(ctx: &Ctx<'_>, v: &Node, path: &str) -> Result<bool, LoadError> {
    v.as_bool().ok_or_else(|| {
        let kind = K::Expected {
            expected: "true or false",
            found: v.describe(),
        };
        ctx.err(v.line, path, kind)
    })
}

/// The raw keys of one param, collected before the cross-key checks.
#[derive(Default)]
struct RawParam<'n> {
    name: Option<(&'n str, usize)>,
    ty: Option<(ParamType, &'n Node)>,
    readable: Option<(bool, usize)>,
    writeable: Option<(bool, usize)>,
    subscribed: Option<bool>,
    lower: Option<(f64, usize)>,
    upper: Option<(f64, usize)>,
    safe: Option<&'n Node>,
    lease: Option<(Duration, usize)>,
}

fn param(
    ctx: &Ctx<'_>,
    path: &str,
    id: usize,
    node: &Node,
    smart: bool,
    seen: &mut HashMap<String, usize>,
) -> Result<Param, LoadError> {
    let mut raw = RawParam::default();
    for (key, k, v) in entries(ctx, node, path, PARAM_KEYS)? {
        let kp = format!("{path}.{key}");
        match key {
            "name" => {
                let name = v.as_scalar().filter(|n| is_identifier(n)).ok_or_else(|| {
                    let kind = K::BadParamName {
                        name: v.as_scalar().map_or_else(|| v.describe(), str::to_owned),
                    };
                    ctx.err(v.line, &kp, kind)
                })?;
                raw.name = Some((name, k.line));
            }
            "type" => {
                let text = v.as_scalar().unwrap_or_default();
                let ty = ParamType::parse(text).ok_or_else(|| {
                    let kind = K::UnknownType {
                        ty: v.as_scalar().map_or_else(|| v.describe(), str::to_owned),
                    };
                    ctx.err(v.line, &kp, kind)
                })?;
                raw.ty = Some((ty, v));
            }
            "readable" => raw.readable = Some((boolean(ctx, v, &kp)?, k.line)),
            "writeable" => raw.writeable = Some((boolean(ctx, v, &kp)?, k.line)),
            "subscribed" => raw.subscribed = Some(boolean(ctx, v, &kp)?),
            "lower" => raw.lower = Some((number(ctx, v, &kp)?, k.line)),
            "upper" => raw.upper = Some((number(ctx, v, &kp)?, k.line)),
            "lease" => raw.lease = Some((interval(ctx, v, &kp, true)?, k.line)),
            _ => raw.safe = Some(v),
        }
    }
    let missing = |m| ctx.err(node.line, path, K::MissingKey { missing: m });
    let (name, name_line) = raw.name.ok_or_else(|| missing("name"))?;
    let (ty, ty_node) = raw.ty.take().ok_or_else(|| missing("type"))?;
    if let Some(first) = seen.insert(name.to_owned(), name_line) {
        let kind = K::DuplicateParamName {
            name: name.to_owned(),
            first_line: first,
        };
        return Err(ctx.err(name_line, format!("{path}.name"), kind));
    }
    let width = check_width(ctx, &ty, ty_node, path, smart)?;
    let bounds = check_bounds(ctx, &ty, &raw, path)?;
    let readable = raw.readable.is_none_or(|r| r.0);
    let writeable = raw.writeable.is_some_and(|w| w.0);
    let access = match (readable, writeable) {
        (true, true) => Access::ReadWrite,
        (true, false) => Access::Read,
        (false, true) => Access::Write,
        (false, false) => {
            let line = raw.readable.map_or(node.line, |r| r.1);
            return Err(ctx.err(line, format!("{path}.readable"), K::NoAccess));
        }
    };
    let safe = match raw.safe {
        Some(v) => Some(check_safe(ctx, &ty, bounds, writeable, v, path)?),
        None => None,
    };
    if let (Some((_, line)), None) = (raw.lease, safe) {
        let reason = "a lease applies to outputs only: give the param a `safe` value";
        return Err(ctx.err(line, format!("{path}.lease"), K::BadLease { reason }));
    }
    Ok(Param {
        id,
        name: name.to_owned(),
        ty,
        access,
        subscribed: raw.subscribed.unwrap_or(true),
        bounds,
        safe,
        lease: raw.lease.map(|(d, _)| d),
        width,
    })
}

fn check_width(
    ctx: &Ctx<'_>,
    ty: &ParamType,
    ty_node: &Node,
    path: &str,
    smart: bool,
) -> Result<usize, LoadError> {
    let Some(width) = ty.storage_width() else {
        let kind = K::ParamSizeOverflow { ty: ty.to_string() };
        return Err(ctx.err(ty_node.line, format!("{path}.type"), kind));
    };
    if smart && width > MAX_SMART_PARAM_WIDTH {
        let kind = K::ParamTooWide {
            ty: ty.to_string(),
            width: width.to_string(),
            max: MAX_SMART_PARAM_WIDTH,
        };
        return Err(ctx.err(ty_node.line, format!("{path}.type"), kind));
    }
    Ok(width)
}

fn check_bounds(
    ctx: &Ctx<'_>,
    ty: &ParamType,
    raw: &RawParam<'_>,
    path: &str,
) -> Result<Bounds, LoadError> {
    let numeric = ty.as_scalar().filter(|s| *s != ScalarType::Bool);
    for (key, b) in [("lower", raw.lower), ("upper", raw.upper)] {
        let Some((value, line)) = b else { continue };
        let kp = format!("{path}.{key}");
        match numeric {
            None => {
                let kind = K::BoundsNotNumeric { ty: ty.to_string() };
                return Err(ctx.err(line, kp, kind));
            }
            Some(s) if !s.bound_in_range(value) => {
                let kind = K::BoundOutOfRange {
                    bound: value,
                    ty: ty.to_string(),
                };
                return Err(ctx.err(line, kp, kind));
            }
            Some(_) => {}
        }
    }
    let bounds = Bounds {
        lower: raw.lower.map_or(f64::NEG_INFINITY, |b| b.0),
        upper: raw.upper.map_or(f64::INFINITY, |b| b.0),
    };
    if bounds.lower > bounds.upper {
        let line = raw.lower.map_or(0, |b| b.1);
        let kind = K::LowerAboveUpper {
            lower: bounds.lower,
            upper: bounds.upper,
        };
        return Err(ctx.err(line, format!("{path}.lower"), kind));
    }
    Ok(bounds)
}

fn check_safe(
    ctx: &Ctx<'_>,
    ty: &ParamType,
    bounds: Bounds,
    writeable: bool,
    v: &Node,
    path: &str,
) -> Result<Value, LoadError> {
    let bad = |reason: String| ctx.err(v.line, format!("{path}.safe"), K::BadSafe { reason });
    let Some(scalar) = ty.as_scalar() else {
        return Err(bad(format!(
            "safe values apply to scalar params only, not `{ty}`"
        )));
    };
    if !writeable {
        return Err(bad(
            "the param is not writeable, so no safe value can be written".into(),
        ));
    }
    let value = if scalar == ScalarType::Bool {
        v.as_bool()
            .map(Value::Bool)
            .ok_or_else(|| bad(format!("expected true or false, found {}", v.describe())))?
    } else if scalar.is_integer() {
        let i = v
            .as_int()
            .ok_or_else(|| bad(format!("expected an integer, found {}", v.describe())))?;
        Value::from_i128(scalar, i).map_err(|e| bad(e.to_string()))?
    } else {
        let x = v
            .as_number()
            .ok_or_else(|| bad(format!("expected a number, found {}", v.describe())))?;
        Value::from_f64(x).map_err(|e| bad(e.to_string()))?
    };
    if !bounds.contains(value) {
        return Err(bad(format!(
            "{value} is outside the bounds [{}, {}]",
            bounds.lower, bounds.upper
        )));
    }
    Ok(value)
}

fn is_kebab(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
