//! Weights in and out: safetensors under nanochat's state-dict keys and PyTorch shapes, and
//! nanochat's own `model_XXXXXX.pt` + `meta_XXXXXX.json`.
//!
//! Every file is written atomically (temporary file in the same directory, fsync, rename), so a
//! crash never leaves a half-written checkpoint under the final name.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::config::GptConfig;
use crate::error::{Error, Result};
use crate::gpt::Gpt;

/// A named f32 tensor on the host, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        HostTensor { shape, data }
    }

    /// Reads a tensor back from the device (f32).
    pub fn from_tensor<B: Backend, const D: usize>(t: Tensor<B, D>) -> Self {
        let shape = t.dims().to_vec();
        let data = t
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 after convert");
        HostTensor { shape, data }
    }

    /// Uploads to `device` as an f32 tensor of rank `D`.
    ///
    /// # Panics
    /// When the rank differs from `D`.
    pub fn to_tensor<B: Backend, const D: usize>(&self, device: &B::Device) -> Tensor<B, D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }

    /// 2-D transpose (`[r, c]` → `[c, r]`).
    pub fn transposed(&self) -> Self {
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut out = vec![0f32; r * c];
        for i in 0..r {
            for j in 0..c {
                out[j * r + i] = self.data[i * c + j];
            }
        }
        HostTensor {
            shape: vec![c, r],
            data: out,
        }
    }
}

/// Writes `path` through a temporary sibling file, fsyncs it, renames it into place and fsyncs
/// the directory.
///
/// # Errors
/// I/O errors, naming the final path.
pub fn atomic_write(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        write(&tmp)?;
        File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all(); // directories cannot be fsynced on every platform
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| Error::io(path, e))
}

/// Writes bytes atomically.
///
/// # Errors
/// I/O errors, naming the final path.
pub fn atomic_write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write(path, |tmp| {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)?;
        f.flush()
    })
}

/// Writes named f32 tensors as a safetensors file, atomically.
///
/// # Errors
/// I/O errors, naming the path.
pub fn write_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, HostTensor>,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                t.shape.clone(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(k, b, s)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| Error::weights(path, format!("tensor `{k}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    atomic_write(path, |tmp| {
        safetensors::tensor::serialize_to_file(views, metadata, tmp).map_err(std::io::Error::other)
    })
}

/// Reads every tensor of a safetensors file as f32 (f32, bf16 and f16 are accepted), plus the
/// header's metadata.
///
/// # Errors
/// I/O errors, a malformed file or an unsupported dtype, naming the path and tensor.
pub fn read_safetensors(
    path: &Path,
) -> Result<(BTreeMap<String, HostTensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::weights(path, format!("not a safetensors file: {e}")))?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| Error::weights(path, e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data = decode(view.dtype(), view.data()).ok_or_else(|| {
            Error::weights(
                path,
                format!(
                    "tensor `{name}` has dtype {:?}; expected F32, BF16 or F16",
                    view.dtype()
                ),
            )
        })?;
        out.insert(name, HostTensor::new(view.shape().to_vec(), data));
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

fn decode(dtype: Dtype, b: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// Tracks the dotted parameter path and whether the current container is one of our linears.
#[derive(Default)]
struct PathTracker {
    stack: Vec<(String, String)>,
}

impl PathTracker {
    fn enter(&mut self, name: &str, container: &str) {
        self.stack.push((name.to_string(), container.to_string()));
    }
    fn exit(&mut self) {
        self.stack.pop();
    }
    /// `(path, is_linear)` of the parameter being visited. burn enters every field, the
    /// parameter's own included, with the type of the struct that holds it.
    fn param(&self) -> (String, bool) {
        let parts: Vec<&str> = self.stack.iter().map(|(n, _)| n.as_str()).collect();
        let linear = self.stack.last().is_some_and(|(_, c)| c == "Struct:Linear");
        (parts.join("."), linear)
    }
}

struct Collect {
    path: PathTracker,
    out: BTreeMap<String, HostTensor>,
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let (key, linear) = self.path.param();
        let t = HostTensor::from_tensor(param.val());
        self.out
            .insert(key, if linear { t.transposed() } else { t });
    }
}

/// The model's weights under nanochat's state-dict keys, in PyTorch layout (`[out, in]` for
/// linears), on the host.
pub fn state_dict<B: Backend>(model: &Gpt<B>) -> BTreeMap<String, HostTensor> {
    let mut c = Collect {
        path: PathTracker::default(),
        out: BTreeMap::new(),
    };
    model.visit(&mut c);
    c.out
}

struct Assign<'a> {
    path: PathTracker,
    source: &'a BTreeMap<String, HostTensor>,
    errors: Vec<String>,
    used: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for Assign<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (key, linear) = self.path.param();
        let (id, tensor, mapper) = param.consume();
        let Some(src) = self.source.get(&key) else {
            self.errors.push(format!("missing tensor `{key}`"));
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let src = if linear && src.shape.len() == 2 {
            src.transposed()
        } else {
            src.clone()
        };
        let want = tensor.dims().to_vec();
        if src.shape != want {
            let shown = if linear { vec![want[1], want[0]] } else { want };
            let got = if linear {
                vec![src.shape[1], src.shape[0]]
            } else {
                src.shape.clone()
            };
            self.errors.push(format!(
                "`{key}` has shape {got:?}, the model expects {shown:?}"
            ));
            return Param::from_mapped_value(id, tensor, mapper);
        }
        self.used.push(key);
        let device = tensor.device();
        let grad = tensor.is_require_grad();
        let new = src.to_tensor::<B, D>(&device).set_require_grad(grad);
        Param::from_mapped_value(id, new, mapper)
    }
}

/// Replaces every parameter of `model` with the tensor of the same nanochat key (PyTorch
/// layout). Strict, like nanochat's `load_state_dict(strict=True)`: a missing key, an extra key
/// or a shape mismatch is an error listing all of them. `origin` names the file in errors.
///
/// # Errors
/// [`Error::Weights`] listing every problem.
pub fn load_state_dict<B: Backend>(
    model: Gpt<B>,
    tensors: &BTreeMap<String, HostTensor>,
    origin: &Path,
) -> Result<Gpt<B>> {
    let mut a = Assign {
        path: PathTracker::default(),
        source: tensors,
        errors: Vec::new(),
        used: Vec::new(),
    };
    let model = model.map(&mut a);
    let mut errors = a.errors;
    for k in tensors.keys() {
        if !a.used.contains(k) && !errors.iter().any(|e| e.contains(&format!("`{k}`"))) {
            errors.push(format!("unexpected tensor `{k}`"));
        }
    }
    if errors.is_empty() {
        Ok(model)
    } else {
        Err(Error::weights(origin, errors.join("; ")))
    }
}

/// Saves the model as safetensors under nanochat's keys and shapes; the header metadata carries
/// the nanochat `model_config` as JSON under `model_config`.
///
/// # Errors
/// I/O errors.
pub fn save_model<B: Backend>(model: &Gpt<B>, path: &Path) -> Result<()> {
    let meta = HashMap::from([(
        "model_config".to_string(),
        serde_json::to_string(&model.config()).expect("config serializes"),
    )]);
    write_safetensors(path, &state_dict(model), Some(meta))
}

/// Loads weights saved by [`save_model`] (or any safetensors file with nanochat's keys) into a
/// model with the same config.
///
/// # Errors
/// I/O, format and key/shape errors naming the file.
pub fn load_model<B: Backend>(model: Gpt<B>, path: &Path) -> Result<Gpt<B>> {
    let (tensors, _) = read_safetensors(path)?;
    load_state_dict(model, &tensors, path)
}

/// The `model_config` stored in a safetensors header by [`save_model`], if any.
///
/// # Errors
/// I/O or malformed JSON.
pub fn safetensors_config(path: &Path) -> Result<Option<GptConfig>> {
    let (_, meta) = read_safetensors(path)?;
    meta.get("model_config")
        .map(|s| {
            serde_json::from_str(s).map_err(|e| Error::Json {
                path: path.into(),
                source: e,
            })
        })
        .transpose()
}

/// Reads a nanochat `model_XXXXXX.pt` into host tensors: strips torch.compile's `_orig_mod.`
/// prefix and converts bf16/f16 to f32 (nanochat keeps `wte` in bf16 on CUDA).
///
/// # Errors
/// The file cannot be read as a PyTorch checkpoint, or holds a non-float tensor.
pub fn read_nanochat_pt(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let reader = burn_store::pytorch::PytorchReader::new(path)
        .map_err(|e| Error::weights(path, format!("not a readable PyTorch checkpoint: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, snap) in reader.into_tensors() {
        let key = name.strip_prefix("_orig_mod.").unwrap_or(&name).to_string();
        let data = snap
            .to_data()
            .map_err(|e| Error::weights(path, format!("tensor `{name}`: {e:?}")))?;
        if !data.dtype.is_float() {
            return Err(Error::weights(
                path,
                format!(
                    "tensor `{name}` has dtype {:?}, expected a float",
                    data.dtype
                ),
            ));
        }
        let shape = data.shape.to_vec();
        let values = data
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| Error::weights(path, format!("tensor `{name}`: {e:?}")))?;
        out.insert(key, HostTensor::new(shape, values));
    }
    Ok(out)
}

/// The `model_config` of a nanochat `meta_XXXXXX.json` (any stage).
///
/// # Errors
/// I/O, malformed JSON or a missing `model_config`.
pub fn read_nanochat_meta(path: &Path) -> Result<GptConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.into(),
        source: e,
    })?;
    let cfg = v.get("model_config").ok_or_else(|| {
        Error::weights(
            path,
            "no `model_config` object (is this a nanochat meta_*.json?)",
        )
    })?;
    serde_json::from_value(cfg.clone()).map_err(|e| Error::Json {
        path: path.into(),
        source: e,
    })
}

/// Builds a model from a nanochat checkpoint pair. `meta` defaults to the `meta_XXXXXX.json` next
/// to `model_XXXXXX.pt`.
///
/// # Errors
/// Unreadable files, an invalid config or weights that do not match it.
pub fn import_nanochat<B: crate::attention::AttentionBackend>(
    pt: &Path,
    meta: Option<&Path>,
    options: crate::config::ModelOptions,
    device: &B::Device,
) -> Result<Gpt<B>> {
    let meta_path: PathBuf = match meta {
        Some(m) => m.to_path_buf(),
        None => {
            let name = pt
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let step = name
                .strip_prefix("model_")
                .and_then(|s| s.strip_suffix(".pt"))
                .ok_or_else(|| {
                    Error::weights(
                        pt,
                        "cannot infer meta_XXXXXX.json from this file name; pass the meta file",
                    )
                })?;
            pt.with_file_name(format!("meta_{step}.json"))
        }
    };
    let config = read_nanochat_meta(&meta_path)?;
    let model = Gpt::init(&config, options, 0, device)?;
    load_state_dict(model, &read_nanochat_pt(pt)?, pt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelOptions;
    use burn::backend::Flex;

    fn cfg() -> GptConfig {
        GptConfig {
            sequence_len: 8,
            vocab_size: 60,
            n_layer: 2,
            n_head: 2,
            n_kv_head: 1,
            n_embd: 16,
        }
    }

    #[test]
    fn keys_and_shapes_are_nanochat() {
        let m = Gpt::<Flex>::init(&cfg(), ModelOptions::default(), 0, &Default::default()).unwrap();
        let sd = state_dict(&m);
        let keys: Vec<&str> = sd.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 2 + 2 * 6);
        let shape = |k: &str| sd[k].shape.clone();
        assert_eq!(shape("transformer.wte.weight"), vec![64, 16]);
        assert_eq!(shape("lm_head.weight"), vec![64, 16]);
        assert_eq!(shape("transformer.h.1.attn.c_q.weight"), vec![16, 16]);
        assert_eq!(shape("transformer.h.1.attn.c_k.weight"), vec![8, 16]); // GQA: [Hkv·hd, d]
        assert_eq!(shape("transformer.h.0.mlp.c_fc.weight"), vec![64, 16]);
        assert_eq!(shape("transformer.h.0.mlp.c_proj.weight"), vec![16, 64]);
        assert_eq!(shape("transformer.h.0.attn.c_proj.weight"), vec![16, 16]);
        // The burn tensor is the transpose of the exported one.
        let burn_w = HostTensor::from_tensor(m.transformer.h[0].mlp.c_fc.weight.val());
        assert_eq!(burn_w.shape, vec![16, 64]);
        assert_eq!(burn_w.transposed(), sd["transformer.h.0.mlp.c_fc.weight"]);
    }

    #[test]
    fn safetensors_round_trip_and_strictness() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let a = Gpt::<Flex>::init(&cfg(), ModelOptions::default(), 1, &Default::default()).unwrap();
        save_model(&a, &path).unwrap();
        assert_eq!(safetensors_config(&path).unwrap(), Some(cfg()));
        let b = Gpt::<Flex>::init(&cfg(), ModelOptions::default(), 2, &Default::default()).unwrap();
        let b = load_model(b, &path).unwrap();
        assert_eq!(state_dict(&a), state_dict(&b));
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let mut sd = state_dict(&a);
        sd.remove("transformer.h.1.mlp.c_fc.weight");
        sd.insert(
            "transformer.h.9.attn.c_q.weight".into(),
            HostTensor::new(vec![1], vec![0.0]),
        );
        let mut bad = sd["transformer.wte.weight"].clone();
        bad.shape = vec![32, 32];
        sd.insert("transformer.wte.weight".into(), bad);
        let err = load_state_dict(b, &sd, Path::new("x.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing tensor `transformer.h.1.mlp.c_fc.weight`"),
            "{err}"
        );
        assert!(
            err.contains("unexpected tensor `transformer.h.9.attn.c_q.weight`"),
            "{err}"
        );
        assert!(
            err.contains("`transformer.wte.weight` has shape [32, 32], the model expects [64, 16]"),
            "{err}"
        );
    }

    #[test]
    fn bf16_tensors_are_widened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bf16.safetensors");
        let vals = [1.5f32, -2.0, 0.333];
        let bytes: Vec<u8> = vals
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect();
        let view = TensorView::new(Dtype::BF16, vec![3], &bytes).unwrap();
        safetensors::tensor::serialize_to_file(vec![("w", view)], None, &path).unwrap();
        let (t, _) = read_safetensors(&path).unwrap();
        assert_eq!(t["w"].data[..2], [1.5, -2.0]);
        assert!((t["w"].data[2] - 0.333).abs() < 2e-3);
    }
}
