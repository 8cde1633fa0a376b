//! Just enough of Python's pickle to read CIFAR-10's python distribution: each batch is a
//! dict pickled by Python 2's cPickle (protocol 2) with `data`, a numpy `uint8` array of
//! shape (n, 3072) rebuilt through `numpy.core.multiarray._reconstruct` and a `BUILD` whose
//! state carries the raw bytes (a Python 2 `str`, so `BINSTRING`), and `labels`, a list of
//! ints. The opcodes of protocols 2–4 that such a file can contain are executed; anything else
//! is refused. No Python code runs: globals are only names.
use std::collections::HashMap;
use std::path::Path;

use crate::cifar10::{check_label, Cifar10Split, IMAGE_LEN};
use crate::error::{DataError, Result};

#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// `str` (Python 2), `bytes` or `unicode`: the raw bytes.
    Str(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// A class or function, `module.name`.
    Global(String),
    /// `callable(*args)`, with the state a later `BUILD` gave it.
    Object {
        callable: Box<Value>,
        args: Box<Value>,
        state: Option<Box<Value>>,
    },
    Mark,
}

struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    // Snapshots: enough here, where only strings, globals and finished objects are re-used.
    memo: HashMap<u32, Value>,
}

fn fail(path: &Path, reason: String) -> DataError {
    DataError::format(path, format!("not a CIFAR-10 python batch: {reason}"))
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize, opcode: u8) -> std::result::Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "truncated: opcode 0x{opcode:02x} needs {n} bytes at byte {} of {}",
                self.at,
                self.bytes.len()
            ));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize, opcode: u8) -> std::result::Result<u64, String> {
        let b = self.take(n, opcode)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    fn line(&mut self, opcode: u8) -> std::result::Result<String, String> {
        let rest = &self.bytes[self.at..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(format!(
                "truncated: opcode 0x{opcode:02x} has no end of line"
            ));
        };
        self.at += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn pop(&mut self) -> std::result::Result<Value, String> {
        match self.stack.pop() {
            Some(Value::Mark) | None => Err(format!("stack underflow at byte {}", self.at)),
            Some(v) => Ok(v),
        }
    }

    /// The values above the topmost mark, which is removed.
    fn pop_mark(&mut self) -> std::result::Result<Vec<Value>, String> {
        let Some(m) = self.stack.iter().rposition(|v| *v == Value::Mark) else {
            return Err(format!("no mark on the stack at byte {}", self.at));
        };
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&mut self) -> std::result::Result<&mut Value, String> {
        let at = self.at;
        self.stack
            .last_mut()
            .ok_or_else(|| format!("empty stack at byte {at}"))
    }

    fn extend(&mut self, items: Vec<Value>) -> std::result::Result<(), String> {
        match self.top()? {
            Value::List(l) => {
                l.extend(items);
                Ok(())
            }
            other => Err(format!("append to a {other:?}")),
        }
    }

    fn set_items(&mut self, items: Vec<Value>) -> std::result::Result<(), String> {
        if items.len() % 2 != 0 {
            return Err("odd number of dict items".into());
        }
        let Value::Dict(d) = self.top()? else {
            return Err("setitem on a non-dict".into());
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }

    fn run(&mut self) -> std::result::Result<Value, String> {
        loop {
            let opcode = self.take(1, 0)?[0];
            match opcode {
                0x80 => {
                    self.take(1, opcode)?; // PROTO
                }
                0x95 => {
                    self.take(8, opcode)?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Value::Mark),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.uint(1, opcode)? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'M' => {
                    let v = self.uint(2, opcode)? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'J' => {
                    let v = self.uint(4, opcode)? as u32 as i32 as i64;
                    self.stack.push(Value::Int(v));
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n ≤ 8 bytes.
                    let n = self.uint(1, opcode)? as usize;
                    if n > 8 {
                        return Err(format!("integer of {n} bytes"));
                    }
                    let raw = self.uint(n, opcode)?;
                    let shift = 64 - 8 * n as u32;
                    let v = if n == 0 {
                        0
                    } else {
                        ((raw << shift) as i64) >> shift
                    };
                    self.stack.push(Value::Int(v));
                }
                b'U' | b'C' | 0x8c => {
                    let n = self.uint(1, opcode)? as usize;
                    let s = self.take(n, opcode)?.to_vec();
                    self.stack.push(Value::Str(s));
                }
                b'T' | b'B' | b'X' => {
                    let n = self.uint(4, opcode)? as usize;
                    let s = self.take(n, opcode)?.to_vec();
                    self.stack.push(Value::Str(s));
                }
                b'c' => {
                    let module = self.line(opcode)?;
                    let name = self.line(opcode)?;
                    self.stack.push(Value::Global(format!("{module}.{name}")));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(m), Value::Str(n)) = (module, name) else {
                        return Err("STACK_GLOBAL of non-strings".into());
                    };
                    self.stack.push(Value::Global(format!(
                        "{}.{}",
                        String::from_utf8_lossy(&m),
                        String::from_utf8_lossy(&n)
                    )));
                }
                b'q' | b'r' | 0x94 => {
                    let key = match opcode {
                        b'q' => self.uint(1, opcode)? as u32,
                        b'r' => self.uint(4, opcode)? as u32,
                        _ => self.memo.len() as u32, // MEMOIZE
                    };
                    let top = self.top()?.clone();
                    self.memo.insert(key, top);
                }
                b'h' | b'j' => {
                    let n = if opcode == b'h' { 1 } else { 4 };
                    let key = self.uint(n, opcode)? as u32;
                    let v = self
                        .memo
                        .get(&key)
                        .cloned()
                        .ok_or_else(|| format!("memo {key} read before it is written"))?;
                    self.stack.push(v);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (opcode - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.stack.push(Value::Tuple(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.stack.push(Value::Object {
                        callable: Box::new(callable),
                        args: Box::new(args),
                        state: None,
                    });
                }
                b'b' => {
                    let new_state = self.pop()?;
                    match self.top()? {
                        Value::Object { state, .. } => *state = Some(Box::new(new_state)),
                        other => return Err(format!("BUILD on a {other:?}")),
                    }
                }
                other => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {}",
                        self.at - 1
                    ))
                }
            }
        }
    }
}

fn get<'v>(dict: &'v [(Value, Value)], key: &str) -> Option<&'v Value> {
    dict.iter()
        .find(|(k, _)| *k == Value::Str(key.as_bytes().to_vec()))
        .map(|(_, v)| v)
}

/// The images of an unpickled numpy `uint8` array of shape (n, 3072).
fn array_pixels(data: &Value) -> std::result::Result<(usize, Vec<u8>), String> {
    let Value::Object {
        callable,
        state: Some(state),
        ..
    } = data
    else {
        return Err("`data` is not a numpy array".into());
    };
    if **callable != Value::Global("numpy.core.multiarray._reconstruct".into())
        && **callable != Value::Global("numpy._core.multiarray._reconstruct".into())
    {
        return Err(format!("`data` is built by {callable:?}, not numpy"));
    }
    // ndarray.__setstate__: (version, shape, dtype, is_fortran, raw bytes).
    let Value::Tuple(parts) = &**state else {
        return Err("`data` has no array state".into());
    };
    let [_, Value::Tuple(shape), dtype, Value::Bool(fortran), Value::Str(raw)] = &parts[..] else {
        return Err(format!(
            "`data` has an unexpected array state of {} parts",
            parts.len()
        ));
    };
    let is_u8 = matches!(dtype, Value::Object { args, .. }
        if matches!(&**args, Value::Tuple(a) if a.first() == Some(&Value::Str(b"u1".to_vec()))));
    if !is_u8 {
        return Err("`data` is not a uint8 array".into());
    }
    let (n, width) = match shape[..] {
        [Value::Int(n), Value::Int(w)] if n >= 0 => (n as usize, w),
        _ => return Err(format!("`data` has shape {shape:?}, not (n, 3072)")),
    };
    if width != IMAGE_LEN as i64 || *fortran {
        return Err(format!(
            "`data` is ({n}, {width}), not ({n}, {IMAGE_LEN}) in C order"
        ));
    }
    if raw.len() != n * IMAGE_LEN {
        return Err(format!(
            "`data` holds {} bytes, not {n} records of {IMAGE_LEN} (record {} is cut short)",
            raw.len(),
            raw.len() / IMAGE_LEN
        ));
    }
    Ok((n, raw.clone()))
}

/// A batch of the python distribution: its `data` and `labels`.
pub fn parse_cifar_batch(path: &Path, bytes: &[u8]) -> Result<Cifar10Split> {
    let mut machine = Machine {
        bytes,
        at: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
    };
    let top = machine.run().map_err(|e| fail(path, e))?;
    let Value::Dict(dict) = top else {
        return Err(fail(path, "the pickle is not a dict".into()));
    };
    let data = get(&dict, "data").ok_or_else(|| fail(path, "no `data` key".into()))?;
    let (n, pixels) = array_pixels(data).map_err(|e| fail(path, e))?;
    let Some(Value::List(labels)) = get(&dict, "labels") else {
        return Err(fail(path, "no `labels` list".into()));
    };
    if labels.len() != n {
        return Err(fail(
            path,
            format!("{} labels for {n} images", labels.len()),
        ));
    }
    let labels = labels
        .iter()
        .enumerate()
        .map(|(k, l)| match l {
            Value::Int(v) => check_label(path, k, *v),
            other => Err(fail(
                path,
                format!("record {k}: label {other:?} is not an int"),
            )),
        })
        .collect::<Result<Vec<u8>>>()?;
    Ok(Cifar10Split { pixels, labels })
}

/// `split` pickled the way Python 2's cPickle wrote the official batches (protocol 2,
/// `str` as `SHORT_BINSTRING`/`BINSTRING`, every object memoised, lists appended in
/// batches of 1,000), with the keys `data`, `labels`, `batch_label`, `filenames`.
#[cfg(test)]
pub(crate) fn cifar_batch_bytes(split: &Cifar10Split, batch_label: &str) -> Vec<u8> {
    struct W {
        out: Vec<u8>,
        memo: u32,
    }
    impl W {
        fn put(&mut self) {
            if self.memo < 256 {
                self.out.extend([b'q', self.memo as u8]);
            } else {
                self.out.push(b'r');
                self.out.extend(self.memo.to_le_bytes());
            }
            self.memo += 1;
        }
        fn str(&mut self, s: &[u8]) {
            if s.len() < 256 {
                self.out.extend([b'U', s.len() as u8]);
            } else {
                self.out.push(b'T');
                self.out.extend((s.len() as u32).to_le_bytes());
            }
            self.out.extend(s);
            self.put();
        }
        fn int(&mut self, v: i64) {
            match v {
                0..=255 => self.out.extend([b'K', v as u8]),
                256..=65535 => {
                    self.out.push(b'M');
                    self.out.extend((v as u16).to_le_bytes());
                }
                _ => {
                    self.out.push(b'J');
                    self.out.extend((v as i32).to_le_bytes());
                }
            }
        }
        fn global(&mut self, module: &str, name: &str) {
            self.out.push(b'c');
            self.out.extend(format!("{module}\n{name}\n").bytes());
            self.put();
        }
        fn list(&mut self, items: usize, mut each: impl FnMut(&mut W, usize)) {
            self.out.push(b']');
            self.put();
            let mut start = 0;
            while start < items {
                let end = (start + 1000).min(items);
                if end - start == 1 {
                    each(self, start);
                    self.out.push(b'a');
                } else {
                    self.out.push(b'(');
                    (start..end).for_each(|i| each(self, i));
                    self.out.push(b'e');
                }
                start = end;
            }
        }
    }
    let n = split.len();
    let mut w = W {
        out: vec![0x80, 2, b'}'],
        memo: 0,
    };
    w.put();
    w.out.push(b'(');
    w.str(b"data");
    w.global("numpy.core.multiarray", "_reconstruct");
    w.global("numpy", "ndarray");
    w.out.extend([b'K', 0, 0x85]);
    w.str(b"b");
    w.out.extend([0x87, b'R']);
    w.put();
    w.out.push(b'(');
    w.int(1);
    w.int(n as i64);
    w.int(IMAGE_LEN as i64);
    w.out.push(0x86);
    w.global("numpy", "dtype");
    w.str(b"u1");
    w.out.extend([b'K', 0, b'K', 1, 0x87, b'R']);
    w.put();
    w.out.push(b'(');
    w.int(3);
    w.str(b"|");
    w.out.extend(b"NNN");
    w.int(-1);
    w.int(-1);
    w.int(0);
    w.out.extend([b't', b'b', 0x89]);
    w.str(&split.pixels);
    w.out.extend([b't', b'b']);
    w.str(b"labels");
    w.list(n, |w, i| w.int(split.labels[i] as i64));
    w.str(b"batch_label");
    w.str(batch_label.as_bytes());
    w.str(b"filenames");
    w.list(n, |w, i| w.str(format!("image_{i:05}.png").as_bytes()));
    w.out.extend([b'u', b'.']);
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cifar10::tests::fixture;

    #[test]
    fn a_cpickle_batch_parses_to_the_pixels_and_labels() {
        // 1,203 records: labels appended in batches of 1,000 and one APPENDS of 203, and
        // filenames memoised past 255 (LONG_BINPUT).
        let split = fixture(1203, 2);
        let bytes = cifar_batch_bytes(&split, "training batch 1 of 5");
        assert_eq!(&bytes[..4], &[0x80, 2, b'}', b'q']);
        assert_eq!(
            parse_cifar_batch(Path::new("data_batch_1"), &bytes).unwrap(),
            split
        );
    }

    #[test]
    fn truncated_and_foreign_pickles_are_named() {
        let split = fixture(3, 0);
        let bytes = cifar_batch_bytes(&split, "testing batch 1 of 1");
        let err = parse_cifar_batch(Path::new("test_batch"), &bytes[..bytes.len() / 2])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test_batch") && err.contains("truncated"),
            "{err}"
        );

        // A label outside 0..9 names its record.
        let mut bad = split.clone();
        bad.labels[2] = 10;
        let err = parse_cifar_batch(Path::new("data_batch_3"), &cifar_batch_bytes(&bad, "x"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data_batch_3") && err.contains("record 2"),
            "{err}"
        );

        // A pickle of something else.
        let err = parse_cifar_batch(Path::new("other"), &[0x80, 2, b']', b'.'])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a dict"), "{err}");
        let err = parse_cifar_batch(Path::new("other"), b"\x80\x02\xff")
            .unwrap_err()
            .to_string();
        assert!(err.contains("opcode 0xff"), "{err}");
    }
}
