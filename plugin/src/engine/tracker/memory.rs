// SPDX-License-Identifier: MPL-2.0

//! The memory bank: which stored memories (bf16 features and object
//! pointers) a frame attends to, with their temporal positions
//! (`_prepare_memory_conditioned_features`, `select_closest_cond_frames`),
//! and dropping those no later frame can read.

use super::{Memory, Object, Tracker};
use crate::engine::stages::MemoryBatch;

impl Tracker {
    /// Drops memories the selection rules can no longer reach: after frame t,
    /// prompts on t still read non-conditioning memories back to
    /// t − (num_maskmem − 1)·stride (spatial) and t − (max_ptrs − 1) (pointers).
    pub(super) fn prune(&mut self, t: u64) {
        let r = &self.rules;
        let reach = u64::from(((r.num_maskmem - 1) * r.stride).max(r.max_ptrs - 1));
        let oldest = t.saturating_sub(reach);
        for o in &mut self.objects {
            o.non_cond = o.non_cond.split_off(&oldest);
            // with a limit, only the `max_cond` most recent conditioning frames are ever
            // selected again; older ones are read only inside the non-conditioning reach
            if r.max_cond > 0 && o.cond.len() > r.max_cond as usize {
                let surplus = o.cond.len() - r.max_cond as usize;
                let old: Vec<u64> = o.cond.keys().copied().take(surplus).collect();
                for f in old.into_iter().filter(|f| *f < oldest) {
                    o.cond.remove(&f);
                }
            }
        }
    }

    /// `select_closest_cond_frames`: (selected, unselected) conditioning frames.
    fn split_cond(&self, o: &Object, t: u64) -> (Vec<u64>, Vec<u64>) {
        let all: Vec<u64> = o.cond.keys().copied().collect();
        let max = self.rules.max_cond;
        if max == -1 || all.len() <= max as usize {
            return (all, Vec::new());
        }
        let mut selected = Vec::new();
        if let Some(b) = all.iter().copied().filter(|f| *f < t).max() {
            selected.push(b);
        }
        if let Some(a) = all.iter().copied().filter(|f| *f >= t).min() {
            selected.push(a);
        }
        let mut rest: Vec<u64> = all
            .iter()
            .copied()
            .filter(|f| !selected.contains(f))
            .collect();
        rest.sort_by_key(|f| f.abs_diff(t));
        let remain = (max as usize).saturating_sub(selected.len());
        selected.extend(rest.into_iter().take(remain));
        let unselected = all.into_iter().filter(|f| !selected.contains(f)).collect();
        selected.sort_unstable();
        (selected, unselected)
    }

    /// Memory-attention inputs for objects `objs` on frame `t`
    /// (`_prepare_memory_conditioned_features`), padded to a common length.
    pub(super) fn memory_batch(&self, objs: &[usize], t: u64) -> MemoryBatch {
        let d = self.dims;
        let r = &self.rules;
        let signed = self.settings.use_signed_tpos_enc_to_obj_ptrs;
        let t_diff_max = (r.max_ptrs - 1) as f32;
        // per object: (memory refs with tpos index) and (pointer refs with tpos)
        let mut mems: Vec<Vec<(&Memory, i64)>> = Vec::new();
        let mut ptrs: Vec<Vec<(&Memory, f32)>> = Vec::new();
        for &i in objs {
            let o = &self.objects[i];
            let (selected, unselected) = self.split_cond(o, t);
            let lookup = |f: u64| {
                o.non_cond
                    .get(&f)
                    .or_else(|| unselected.contains(&f).then(|| &o.cond[&f]))
            };
            let mut m: Vec<(&Memory, i64)> = selected
                .iter()
                .map(|f| (&o.cond[f], i64::from(r.num_maskmem) - 1))
                .collect();
            for t_pos in 1..r.num_maskmem {
                let t_rel = u64::from(r.num_maskmem - t_pos);
                let stride = u64::from(r.stride);
                let prev = if t_rel == 1 {
                    t.checked_sub(1)
                } else {
                    t.checked_sub(2)
                        .map(|v| (v / stride) * stride)
                        .and_then(|v| v.checked_sub((t_rel - 2) * stride))
                };
                if let Some(mem) = prev.and_then(lookup) {
                    m.push((mem, i64::from(r.num_maskmem - t_pos) - 1));
                }
            }
            let mut p: Vec<(&Memory, f32)> = selected
                .iter()
                .filter(|f| !self.settings.only_obj_ptrs_in_the_past_for_eval || **f <= t)
                .map(|f| {
                    let diff = t as i64 - *f as i64;
                    let diff = if signed { diff } else { diff.abs() };
                    (&o.cond[f], diff as f32 / t_diff_max)
                })
                .collect();
            for t_diff in 1..u64::from(r.max_ptrs) {
                let Some(f) = t.checked_sub(t_diff) else {
                    break;
                };
                if let Some(mem) = lookup(f) {
                    p.push((mem, t_diff as f32 / t_diff_max));
                }
            }
            mems.push(m);
            ptrs.push(p);
        }
        let b = objs.len();
        let nm = mems.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let np = ptrs.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut batch = MemoryBatch {
            batch: b,
            nm,
            p: np,
            slots: vec![None; b * nm],
            tpos_index: vec![0; b * nm],
            memory_valid: vec![0.0; b * nm],
            obj_ptrs: vec![0.0; b * np * d.c],
            obj_ptr_tpos: vec![0.0; b * np],
            obj_ptr_valid: vec![0.0; b * np],
        };
        for (k, (m, p)) in mems.iter().zip(&ptrs).enumerate() {
            for (s, (mem, idx)) in m.iter().enumerate() {
                batch.slots[k * nm + s] = Some(mem.features.clone());
                batch.tpos_index[k * nm + s] = *idx;
                batch.memory_valid[k * nm + s] = 1.0;
            }
            for (s, (mem, tpos)) in p.iter().enumerate() {
                batch.obj_ptrs[(k * np + s) * d.c..(k * np + s + 1) * d.c]
                    .copy_from_slice(&mem.ptr);
                batch.obj_ptr_tpos[k * np + s] = if self.settings.add_tpos_enc_to_obj_ptrs {
                    *tpos
                } else {
                    0.0
                };
                batch.obj_ptr_valid[k * np + s] = 1.0;
            }
        }
        batch
    }
}
