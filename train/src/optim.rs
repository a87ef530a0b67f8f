//! nanochat's optimizers (nanochat-spec §5.1), written out so they match exactly.
//!
//! - **Muon** for every matrix of `transformer.h`: momentum `buf.lerp_(g, 1−μ)`, Nesterov
//!   `g.lerp_(buf, μ)`, 5 Newton–Schulz steps with (a, b, c) = (3.4445, −4.7750, 2.0315) on
//!   `X / (‖X‖_F + 1e-7)` (transposed so `X·Xᵀ` is the smaller Gram matrix), update
//!   `p −= lr·√max(1, out/in)·X`, no weight decay. burn's own `Muon` differs in momentum form,
//!   schedule and the aspect scale under its `[in, out]` layout (burn-notes §4.2), so it is not
//!   used. With weights stored `[in, out]` the scale is `√max(1, cols/rows)`; the Newton–Schulz
//!   input is the same matrix PyTorch sees (NS commutes with transposition).
//! - **AdamW** (`torch.optim.AdamW` math) for `lm_head` (lr 0.004) and `wte` (lr 0.2), both times
//!   `(d/768)^−0.5`; betas (0.8, 0.95), eps 1e-10, weight decay 0.
//!
//! `lerp` follows PyTorch's two-branch kernel so f32 results match bit for bit where the
//! arithmetic allows. State is keyed by parameter path (not burn's random `ParamId`s) and saved
//! as safetensors next to the weights, which makes resume exact.

use std::collections::{BTreeMap, HashMap};

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Tensor};
use njp_model::weights::HostTensor;
use njp_model::{Gpt, Precision};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Newton–Schulz quintic coefficients (Keller Jordan's Muon, as in nanochat v1).
pub const NS_COEFFS: (f64, f64, f64) = (3.4445, -4.7750, 2.0315);

/// Optimizer hyperparameters (nanochat `setup_optimizers` defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    pub unembedding_lr: f64,
    pub embedding_lr: f64,
    pub matrix_lr: f64,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_eps: f64,
    pub ns_steps: usize,
    /// Newton–Schulz precision: nanochat runs it in bf16 on GPU; f32 on CPU (flex emulates bf16).
    pub ns_precision: Precision,
    pub nesterov: bool,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            unembedding_lr: 0.004,
            embedding_lr: 0.2,
            matrix_lr: 0.02,
            weight_decay: 0.0,
            adam_beta1: 0.8,
            adam_beta2: 0.95,
            adam_eps: 1e-10,
            ns_steps: 5,
            ns_precision: Precision::F32,
            nesterov: true,
        }
    }
}

/// Which optimizer group a parameter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// `lm_head.weight` (AdamW).
    Unembedding,
    /// `transformer.wte.weight` (AdamW).
    Embedding,
    /// Everything under `transformer.h` (Muon).
    Matrix,
}

impl Group {
    pub fn of(path: &str) -> Option<Group> {
        match path {
            "lm_head.weight" => Some(Group::Unembedding),
            "transformer.wte.weight" => Some(Group::Embedding),
            p if p.starts_with("transformer.h.") => Some(Group::Matrix),
            _ => None,
        }
    }
}

/// PyTorch's `torch.lerp(start, end, weight)`: `start + w·(end − start)` for `w < 0.5`, else
/// `end − (end − start)·(1 − w)`.
pub fn lerp<B: Backend, const D: usize>(
    start: Tensor<B, D>,
    end: Tensor<B, D>,
    w: f64,
) -> Tensor<B, D> {
    let diff = end.clone() - start.clone();
    if w < 0.5 {
        start + diff * w
    } else {
        end - diff * (1.0 - w)
    }
}

/// nanochat's `zeropower_via_newtonschulz5`: an approximately orthogonal matrix with the
/// singular vectors of `g`. Returns f32.
pub fn newton_schulz<B: Backend>(
    g: Tensor<B, 2>,
    steps: usize,
    precision: Precision,
) -> Tensor<B, 2> {
    let [rows, cols] = g.dims();
    let (a, b, c) = NS_COEFFS;
    let mut x = match precision {
        Precision::F32 => g,
        Precision::Bf16 => g.cast(DType::BF16),
    };
    let transpose = rows > cols;
    if transpose {
        x = x.transpose();
    }
    let norm = x.clone().cast(DType::F32).square().sum().sqrt() + 1e-7;
    x = x.clone() / norm.cast(x.dtype()).reshape([1, 1]);
    for _ in 0..steps {
        let gram = x.clone().matmul(x.clone().transpose());
        let poly = gram.clone() * b + gram.clone().matmul(gram) * c;
        x = x.clone() * a + poly.matmul(x);
    }
    if transpose {
        x = x.transpose();
    }
    x.cast(DType::F32)
}

/// Adam moments of one parameter.
#[derive(Debug, Clone)]
struct AdamState<B: Backend> {
    m: Tensor<B, 2>,
    v: Tensor<B, 2>,
    step: u64,
}

/// Learning rates of one step, after schedules.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepLrs {
    pub unembedding: f64,
    pub embedding: f64,
    pub matrix: f64,
    /// Muon momentum μ.
    pub momentum: f64,
}

/// Muon + AdamW over a [`Gpt`], state on the inner (non-autodiff) backend `B`.
#[derive(Debug, Clone)]
pub struct Optimizers<B: Backend> {
    cfg: OptimConfig,
    adam: HashMap<String, AdamState<B>>,
    muon: HashMap<String, Tensor<B, 2>>,
}

/// Scalars of the optimizer state (the tensors go to `optim_XXXXXX.safetensors`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimMeta {
    /// AdamW step count per parameter path.
    pub adam_steps: BTreeMap<String, u64>,
}

impl<B: Backend> Optimizers<B> {
    pub fn new(cfg: OptimConfig) -> Self {
        Optimizers {
            cfg,
            adam: HashMap::new(),
            muon: HashMap::new(),
        }
    }

    pub fn config(&self) -> &OptimConfig {
        &self.cfg
    }

    /// Group learning rates for a schedule multiplier `lrm`, nanochat's `(d/768)^−0.5` AdamW
    /// scaling and a stage's `init_lr_frac` (mid 1.0, SFT 0.02).
    pub fn lrs(&self, d_model: usize, lrm: f64, init_lr_frac: f64, momentum: f64) -> StepLrs {
        let scale = (d_model as f64 / 768.0).powf(-0.5);
        StepLrs {
            unembedding: self.cfg.unembedding_lr * scale * init_lr_frac * lrm,
            embedding: self.cfg.embedding_lr * scale * init_lr_frac * lrm,
            matrix: self.cfg.matrix_lr * init_lr_frac * lrm,
            momentum,
        }
    }

    fn muon_update(
        &mut self,
        path: &str,
        w: Tensor<B, 2>,
        g: Tensor<B, 2>,
        lr: f64,
        mu: f64,
    ) -> Tensor<B, 2> {
        let buf = self.muon.remove(path).unwrap_or_else(|| g.zeros_like());
        let buf = lerp(buf, g.clone(), 1.0 - mu);
        let g = if self.cfg.nesterov {
            lerp(g, buf.clone(), mu)
        } else {
            buf.clone()
        };
        self.muon.insert(path.to_string(), buf);
        let x = newton_schulz(g, self.cfg.ns_steps, self.cfg.ns_precision);
        let [rows, cols] = w.dims(); // [in, out]
        let scale = (cols as f64 / rows as f64).max(1.0).sqrt();
        w - x * (lr * scale)
    }

    fn adamw_update(
        &mut self,
        path: &str,
        w: Tensor<B, 2>,
        g: Tensor<B, 2>,
        lr: f64,
    ) -> Tensor<B, 2> {
        let c = &self.cfg;
        let st = self.adam.remove(path).unwrap_or_else(|| AdamState {
            m: g.zeros_like(),
            v: g.zeros_like(),
            step: 0,
        });
        let step = st.step + 1;
        let w = if c.weight_decay == 0.0 {
            w
        } else {
            w * (1.0 - lr * c.weight_decay)
        };
        let m = lerp(st.m, g.clone(), 1.0 - c.adam_beta1);
        let v = st.v * c.adam_beta2 + g.clone() * g * (1.0 - c.adam_beta2);
        let bc1 = 1.0 - c.adam_beta1.powi(step as i32);
        let bc2 = 1.0 - c.adam_beta2.powi(step as i32);
        let denom = v.clone().sqrt() / bc2.sqrt() + c.adam_eps;
        let w = w - m.clone() / denom * (lr / bc1);
        self.adam.insert(path.to_string(), AdamState { m, v, step });
        w
    }

    /// Applies one optimizer step to every parameter that has a gradient in `grads` (which is
    /// consumed). Parameters outside the three groups are an error.
    ///
    /// # Errors
    /// A parameter path that belongs to no group (a model this optimizer does not know).
    pub fn step<AB: AutodiffBackend<InnerBackend = B>>(
        &mut self,
        model: Gpt<AB>,
        grads: &mut GradientsParams,
        lrs: StepLrs,
    ) -> Result<Gpt<AB>> {
        let mut m = StepMapper {
            opt: self,
            grads,
            path: Vec::new(),
            lrs,
            unknown: Vec::new(),
        };
        let model = burn::module::Module::map(model, &mut m);
        if m.unknown.is_empty() {
            Ok(model)
        } else {
            Err(Error::Config(format!(
                "parameters outside every optimizer group: {}",
                m.unknown.join(", ")
            )))
        }
    }

    /// Optimizer tensors under `adamw.<path>.exp_avg|exp_avg_sq` and
    /// `muon.<path>.momentum_buffer` (burn layout `[in, out]`), plus scalar meta.
    pub fn state(&self) -> (BTreeMap<String, HostTensor>, OptimMeta) {
        let mut t = BTreeMap::new();
        let mut meta = OptimMeta::default();
        for (p, s) in &self.adam {
            t.insert(
                format!("adamw.{p}.exp_avg"),
                HostTensor::from_tensor(s.m.clone()),
            );
            t.insert(
                format!("adamw.{p}.exp_avg_sq"),
                HostTensor::from_tensor(s.v.clone()),
            );
            meta.adam_steps.insert(p.clone(), s.step);
        }
        for (p, b) in &self.muon {
            t.insert(
                format!("muon.{p}.momentum_buffer"),
                HostTensor::from_tensor(b.clone()),
            );
        }
        (t, meta)
    }

    /// Restores what [`Optimizers::state`] produced.
    ///
    /// # Errors
    /// Missing or unexpected tensors (the state belongs to another model).
    pub fn load_state(
        &mut self,
        tensors: &BTreeMap<String, HostTensor>,
        meta: &OptimMeta,
        device: &B::Device,
    ) -> Result<()> {
        self.adam.clear();
        self.muon.clear();
        let mut problems = Vec::new();
        for (p, &step) in &meta.adam_steps {
            match (
                tensors.get(&format!("adamw.{p}.exp_avg")),
                tensors.get(&format!("adamw.{p}.exp_avg_sq")),
            ) {
                (Some(m), Some(v)) => {
                    self.adam.insert(
                        p.clone(),
                        AdamState {
                            m: m.to_tensor(device),
                            v: v.to_tensor(device),
                            step,
                        },
                    );
                }
                _ => problems.push(format!("AdamW moments of `{p}` are missing")),
            }
        }
        for (k, t) in tensors {
            if let Some(p) = k
                .strip_prefix("muon.")
                .and_then(|s| s.strip_suffix(".momentum_buffer"))
            {
                self.muon.insert(p.to_string(), t.to_tensor(device));
            } else if !(k.starts_with("adamw.")
                && (k.ends_with(".exp_avg") || k.ends_with(".exp_avg_sq")))
            {
                problems.push(format!("unexpected tensor `{k}`"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Data(problems.join("; ")))
        }
    }
}

struct StepMapper<'a, B: Backend> {
    opt: &'a mut Optimizers<B>,
    grads: &'a mut GradientsParams,
    path: Vec<String>,
    lrs: StepLrs,
    unknown: Vec<String>,
}

impl<AB: AutodiffBackend> ModuleMapper<AB> for StepMapper<'_, AB::InnerBackend> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<AB::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let path = self.path.join("."); // burn enters the parameter field itself too
        let dims = tensor.dims();
        let w: Tensor<AB::InnerBackend, 2> = tensor.inner().reshape([dims[0], dims[1]]);
        let g: Tensor<AB::InnerBackend, 2> = grad.reshape([dims[0], dims[1]]);
        let new = match Group::of(&path) {
            Some(Group::Matrix) => {
                self.opt
                    .muon_update(&path, w, g, self.lrs.matrix, self.lrs.momentum)
            }
            Some(Group::Unembedding) => self.opt.adamw_update(&path, w, g, self.lrs.unembedding),
            Some(Group::Embedding) => self.opt.adamw_update(&path, w, g, self.lrs.embedding),
            None => {
                self.unknown.push(path);
                w
            }
        };
        let new = Tensor::<AB, D>::from_inner(new.reshape(dims)).require_grad();
        Param::from_mapped_value(id, new, mapper)
    }
}

struct NormVisitor<'a, B: Backend> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<B, 1>>,
}

impl<AB: AutodiffBackend> ModuleVisitor<AB> for NormVisitor<'_, AB::InnerBackend> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if let Some(g) = self.grads.get::<AB::InnerBackend, D>(param.id) {
            let s = g.square().sum();
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

/// Global L2 norm of all gradients (PyTorch `clip_grad_norm_`'s `total_norm`), read to the host.
pub fn grad_norm<AB: AutodiffBackend>(model: &Gpt<AB>, grads: &GradientsParams) -> f64 {
    let mut v = NormVisitor::<AB::InnerBackend> { grads, sum: None };
    burn::module::Module::visit(model, &mut v);
    v.sum
        .map_or(0.0, |s| f64::from(s.sqrt().into_scalar().elem::<f32>()))
}

struct ScaleVisitor<'a> {
    grads: &'a mut GradientsParams,
    coef: f64,
}

impl<AB: AutodiffBackend> ModuleVisitor<AB> for ScaleVisitor<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if let Some(g) = self.grads.remove::<AB::InnerBackend, D>(param.id) {
            self.grads
                .register::<AB::InnerBackend, D>(param.id, g * self.coef);
        }
    }
}

/// nanochat's `clip_grad_norm_(params, max_norm)` given the already computed total norm:
/// multiplies every gradient by `min(1, max_norm / (norm + 1e-6))`. Returns the coefficient.
pub fn clip_grads<AB: AutodiffBackend>(
    model: &Gpt<AB>,
    grads: &mut GradientsParams,
    norm: f64,
    max_norm: f64,
) -> f64 {
    let coef = (max_norm / (norm + 1e-6)).min(1.0);
    if coef < 1.0 {
        let mut v = ScaleVisitor { grads, coef };
        burn::module::Module::visit(model, &mut v);
    }
    coef
}

/// Adds `other` into `acc` parameter by parameter (gradient accumulation).
pub fn accumulate<AB: AutodiffBackend>(
    model: &Gpt<AB>,
    acc: &mut GradientsParams,
    other: GradientsParams,
) {
    struct Acc<'a> {
        acc: &'a mut GradientsParams,
        other: GradientsParams,
    }
    impl<AB: AutodiffBackend> ModuleVisitor<AB> for Acc<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
            if let Some(g) = self.other.remove::<AB::InnerBackend, D>(param.id) {
                let sum = match self.acc.remove::<AB::InnerBackend, D>(param.id) {
                    Some(a) => a + g,
                    None => g,
                };
                self.acc.register::<AB::InnerBackend, D>(param.id, sum);
            }
        }
    }
    let mut v = Acc { acc, other };
    burn::module::Module::visit(model, &mut v);
}

use burn::tensor::ElementConversion;

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::TensorData;
    use njp_model::{GptConfig, ModelOptions, Rng};

    type Ad = Autodiff<Flex>;

    fn mat(rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Tensor<Flex, 2>) {
        let mut v = vec![0f32; rows * cols];
        Rng::new(seed).fill_normal(&mut v, 0.0, 1.0);
        let t = Tensor::from_data(
            TensorData::new(v.clone(), [rows, cols]),
            &Default::default(),
        );
        (v, t)
    }

    /// Plain f64 reference of nanochat's Newton–Schulz on a row-major `[r, c]` matrix.
    fn ns_reference(g: &[f32], r: usize, c: usize, steps: usize) -> Vec<f64> {
        let mm = |a: &[f64], b: &[f64], n: usize, k: usize, m: usize| {
            let mut o = vec![0.0; n * m];
            for i in 0..n {
                for p in 0..k {
                    for j in 0..m {
                        o[i * m + j] += a[i * k + p] * b[p * m + j];
                    }
                }
            }
            o
        };
        let tr = |a: &[f64], n: usize, m: usize| {
            let mut o = vec![0.0; n * m];
            for i in 0..n {
                for j in 0..m {
                    o[j * n + i] = a[i * m + j];
                }
            }
            o
        };
        let mut x: Vec<f64> = g.iter().map(|&v| f64::from(v)).collect();
        let (mut n, mut m) = (r, c);
        let t = r > c;
        if t {
            x = tr(&x, r, c);
            (n, m) = (c, r);
        }
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt() + 1e-7;
        x.iter_mut().for_each(|v| *v /= norm);
        let (a, b, cc) = NS_COEFFS;
        for _ in 0..steps {
            let gram = mm(&x, &tr(&x, n, m), n, m, n);
            let gg = mm(&gram, &gram, n, n, n);
            let poly: Vec<f64> = gram.iter().zip(&gg).map(|(p, q)| b * p + cc * q).collect();
            let px = mm(&poly, &x, n, n, m);
            x = x.iter().zip(&px).map(|(xi, pi)| a * xi + pi).collect();
        }
        if t { tr(&x, n, m) } else { x }
    }

    #[test]
    fn newton_schulz_matches_reference_and_orthogonalizes() {
        for (r, c) in [(8, 24), (24, 8), (16, 16)] {
            let (v, t) = mat(r, c, 11);
            let got = newton_schulz(t, 5, Precision::F32)
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            let want = ns_reference(&v, r, c, 5);
            for (g, w) in got.iter().zip(&want) {
                assert!((f64::from(*g) - w).abs() < 1e-4, "{r}x{c}: {g} vs {w}");
            }
            // Singular values land near 1 (NS5 leaves them in roughly [0.7, 1.2]): the mean
            // squared singular value is ‖X‖²_F / min(r, c).
            let sq: f64 = want.iter().map(|x| x * x).sum::<f64>() / r.min(c) as f64;
            assert!((0.5..1.44).contains(&sq), "{r}x{c}: mean σ² = {sq}");
        }
        // A zero gradient gives a zero update, not NaN (zero-initialised projections at step 0).
        let z = Tensor::<Flex, 2>::zeros([4, 6], &Default::default());
        let out = newton_schulz(z, 5, Precision::F32);
        assert_eq!(out.abs().sum().into_scalar(), 0.0);
    }

    fn host_lerp(a: f32, b: f32, w: f64) -> f32 {
        let w = w as f32;
        if w < 0.5 {
            a + w * (b - a)
        } else {
            b - (b - a) * (1.0 - w)
        }
    }

    #[test]
    fn muon_step_matches_reference_computation() {
        // One matrix parameter, two steps, against a host reimplementation of nanochat's Muon.
        let cfg = GptConfig {
            sequence_len: 4,
            vocab_size: 10,
            n_layer: 1,
            n_head: 1,
            n_kv_head: 1,
            n_embd: 8,
        };
        let device = Default::default();
        let model = Gpt::<Ad>::init(&cfg, ModelOptions::default(), 0, &device).unwrap();
        let mut opt = Optimizers::<Flex>::new(OptimConfig::default());
        let w0 = HostTensor::from_tensor(model.transformer.h[0].mlp.c_fc.weight.val().inner()); // [8, 32]
        let (g1v, g1) = mat(8, 32, 1);
        let (g2v, g2) = mat(8, 32, 2);
        let id = model.transformer.h[0].mlp.c_fc.weight.id;
        let mut model = model;
        let mut buf = vec![0f32; 8 * 32];
        let mut w = w0.data.clone();
        for (k, (gv, gt)) in [(g1v, g1), (g2v, g2)].into_iter().enumerate() {
            let mu = 0.85 + 0.1 * k as f64;
            let mut grads = GradientsParams::new();
            grads.register::<Flex, 2>(id, gt);
            let lrs = StepLrs {
                unembedding: 0.0,
                embedding: 0.0,
                matrix: 0.02,
                momentum: mu,
            };
            model = opt.step(model, &mut grads, lrs).unwrap();
            // reference
            for (b, g) in buf.iter_mut().zip(&gv) {
                *b = host_lerp(*b, *g, 1.0 - mu);
            }
            let nest: Vec<f32> = gv
                .iter()
                .zip(&buf)
                .map(|(g, b)| host_lerp(*g, *b, mu))
                .collect();
            let x = ns_reference(&nest, 8, 32, 5);
            let scale = (32f64 / 8.0).sqrt(); // c_fc: out/in = 4 → ×2, as in nanochat
            for (wi, xi) in w.iter_mut().zip(&x) {
                *wi -= (0.02 * scale * xi) as f32;
            }
        }
        let got = HostTensor::from_tensor(model.transformer.h[0].mlp.c_fc.weight.val().inner());
        for (g, r) in got.data.iter().zip(&w) {
            assert!((g - r).abs() < 1e-5, "{g} vs {r}");
        }
        let (state, _) = opt.state();
        assert!(state.contains_key("muon.transformer.h.0.mlp.c_fc.weight.momentum_buffer"));
    }

    #[test]
    fn adamw_matches_torch_formula() {
        let cfg = GptConfig {
            sequence_len: 4,
            vocab_size: 10,
            n_layer: 1,
            n_head: 1,
            n_kv_head: 1,
            n_embd: 8,
        };
        let device = Default::default();
        let mut model = Gpt::<Ad>::init(&cfg, ModelOptions::default(), 0, &device).unwrap();
        let mut opt = Optimizers::<Flex>::new(OptimConfig::default());
        let id = model.transformer.wte.weight.id;
        let w0 = HostTensor::from_tensor(model.transformer.wte.weight.val().inner());
        let (mut m, mut v, mut w) = (
            vec![0f64; w0.data.len()],
            vec![0f64; w0.data.len()],
            w0.data.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
        );
        let lr = 0.1;
        for step in 1..=3 {
            let (gv, gt) = mat(64, 8, 10 + step);
            let mut grads = GradientsParams::new();
            grads.register::<Flex, 2>(id, gt);
            let lrs = StepLrs {
                unembedding: 0.0,
                embedding: lr,
                matrix: 0.0,
                momentum: 0.95,
            };
            model = opt.step(model, &mut grads, lrs).unwrap();
            let (b1, b2, eps) = (0.8f64, 0.95f64, 1e-10);
            for i in 0..w.len() {
                let g = f64::from(gv[i]);
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let bc1 = 1.0 - b1.powi(step as i32);
                let bc2 = 1.0 - b2.powi(step as i32);
                w[i] -= lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + eps);
            }
        }
        let got = HostTensor::from_tensor(model.transformer.wte.weight.val().inner());
        for (g, r) in got.data.iter().zip(&w) {
            assert!((f64::from(*g) - r).abs() < 1e-5, "{g} vs {r}");
        }
        // State round trip.
        let (t, meta) = opt.state();
        assert_eq!(meta.adam_steps["transformer.wte.weight"], 3);
        let mut again = Optimizers::<Flex>::new(OptimConfig::default());
        again.load_state(&t, &meta, &device).unwrap();
        assert_eq!(again.state().0, t);
        let mut extra = t.clone();
        extra.insert("bogus".into(), HostTensor::new(vec![1], vec![0.0]));
        assert!(
            again
                .load_state(&extra, &meta, &device)
                .unwrap_err()
                .to_string()
                .contains("bogus")
        );
    }

    #[test]
    fn lr_groups_follow_nanochat() {
        let opt = Optimizers::<Flex>::new(OptimConfig::default());
        let l = opt.lrs(1280, 1.0, 1.0, 0.95);
        assert!((l.unembedding - 0.0030984).abs() < 1e-6);
        assert!((l.embedding - 0.154919).abs() < 1e-5);
        assert_eq!(l.matrix, 0.02);
        let sft = opt.lrs(1280, 0.5, 0.02, 0.95);
        assert!((sft.matrix - 0.0002).abs() < 1e-12);
        assert_eq!(
            Group::of("transformer.h.3.attn.c_q.weight"),
            Some(Group::Matrix)
        );
        assert_eq!(Group::of("lm_head.weight"), Some(Group::Unembedding));
    }

    #[test]
    fn clipping_and_norm() {
        let cfg = GptConfig {
            sequence_len: 4,
            vocab_size: 10,
            n_layer: 1,
            n_head: 1,
            n_kv_head: 1,
            n_embd: 8,
        };
        let model = Gpt::<Ad>::init(&cfg, ModelOptions::default(), 0, &Default::default()).unwrap();
        let mut grads = GradientsParams::new();
        let t = Tensor::<Flex, 2>::ones([8, 64], &Default::default()) * 0.5; // norm = 0.5·√512
        grads.register::<Flex, 2>(model.lm_head.weight.id, t);
        let n = grad_norm(&model, &grads);
        assert!((n - 0.5 * 512f64.sqrt()).abs() < 1e-4);
        let coef = clip_grads(&model, &mut grads, n, 1.0);
        assert!((coef - 1.0 / (n + 1e-6)).abs() < 1e-9);
        assert!((grad_norm(&model, &grads) - 1.0).abs() < 1e-4);
        let mut acc = GradientsParams::new();
        accumulate(&model, &mut acc, grads);
        let mut g2 = GradientsParams::new();
        g2.register::<Flex, 2>(
            model.lm_head.weight.id,
            Tensor::<Flex, 2>::ones([8, 64], &Default::default()),
        );
        accumulate(&model, &mut acc, g2);
        assert!(grad_norm(&model, &acc) > 1.0);
    }
}
