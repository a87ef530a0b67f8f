#![allow(clippy::print_stdout)] // a benchmark tool: its result is the JSON line on stdout
//! Parity with the PyTorch reference (`bench/train/nanochat_ref.py parity DIR`): loads the same
//! weights and batch, compares logits, then runs the same two optimizer steps (Muon + AdamW,
//! nanochat's learning rates and momentum schedule) and compares the losses.
//!
//! `cargo run --release -p njp-train --example parity -- DIR` prints one JSON object.

use std::path::PathBuf;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Int, Tensor, TensorData};
use njp_model::weights::{load_model, safetensors_config};
use njp_model::{Gpt, ModelOptions};
use njp_train::optim::{OptimConfig, Optimizers};
use njp_train::packing::Batch;
use njp_train::schedule::muon_momentum;
use njp_train::trainer::forward_backward;

type B = Autodiff<Flex>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: parity DIR")?);
    let weights = dir.join("weights.safetensors");
    let config = safetensors_config(&weights)?.ok_or("weights.safetensors has no model_config")?;
    let device = Default::default();
    let model = load_model(
        Gpt::<B>::init(&config, ModelOptions::default(), 0, &device)?,
        &weights,
    )?;
    let batch_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("batch.json"))?)?;
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json"))?)?;
    let rows = |k: &str| -> Vec<Vec<i64>> {
        batch_json[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect()
            })
            .collect()
    };
    let (inputs, targets) = (rows("inputs"), rows("targets"));
    let (b, t) = (inputs.len(), inputs[0].len());
    let batch = Batch {
        rows: b,
        cols: t,
        inputs: inputs.concat(),
        targets: targets.concat(),
        row_ids: vec![String::new(); b],
    };
    let idx =
        Tensor::<B, 2, Int>::from_data(TensorData::new(batch.inputs.clone(), [b, t]), &device);
    let logits = model.forward(idx).into_data().to_vec::<f32>()?;
    let want: Vec<f64> = reference["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // Relative error against the largest reference logit (element-wise ratios blow up for
    // logits near zero, which carry no information about the implementation).
    let max_abs = logits
        .iter()
        .zip(&want)
        .map(|(g, w)| (f64::from(*g) - w).abs())
        .fold(0.0, f64::max);
    let scale = want.iter().map(|w| w.abs()).fold(0.0, f64::max);
    let max_rel = max_abs / scale;
    let mut optim = Optimizers::<Flex>::new(OptimConfig::default());
    let mut model = model;
    let mut losses = Vec::new();
    let steps = reference["losses"].as_array().map_or(2, Vec::len);
    for step in 0..steps {
        let (loss, mut grads) = forward_backward(&model, &batch, 1, &device);
        losses.push(loss);
        let lrs = optim.lrs(config.n_embd, 1.0, 1.0, muon_momentum(step as u64));
        model = optim.step(model, &mut grads, lrs)?;
    }
    let (loss_after, _) = forward_backward(&model, &batch, 1, &device);
    let ref_losses: Vec<f64> = reference["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let ref_after = reference["loss_after"].as_f64().unwrap();
    let out = serde_json::json!({
        "config": config,
        "logits_compared": logits.len().min(want.len()),
        "logits_max_abs_err": max_abs,
        "logits_max_abs_err_over_max_abs_logit": max_rel,
        "logits_max_abs_logit": scale,
        "losses_rust": losses,
        "losses_torch": ref_losses,
        "loss_after_rust": loss_after,
        "loss_after_torch": ref_after,
        "loss_after_rel_diff": (loss_after - ref_after).abs() / ref_after.abs(),
        "ns_dtype_torch": reference["ns_dtype"],
    });
    println!("{out}");
    Ok(())
}
