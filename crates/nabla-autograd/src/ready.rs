//! When a parameter's gradient is final during backward, so that a caller
//! can start using it (sending it to other processes) while backward goes
//! on through the layers below.
//!
//! Backward walks the tape from the last node to the first. A parameter's
//! leaf receives gradient only from the nodes that used it, all recorded
//! after it; once the walk has passed the first of them, nothing more can
//! reach the leaf. A parameter registered on several leaves is final when
//! all of them are, and is reported once, with their sum.

use crate::{OuterProduct, ParamId, Result};
use nabla_tensor::{Float, Tensor};
use smallvec::SmallVec;

/// What a parameter's final gradient is told to: its id and the gradient
/// this backward pass computed for it.
pub type OnFinal<'a, T> = &'a mut dyn FnMut(ParamId, &Tensor<T>) -> Result<()>;

/// The parameters of one backward pass in the order they become final.
pub(crate) struct ReadyOrder {
    /// `(first user, parameter, its leaves in tape order)`, latest first
    /// user first.
    entries: Vec<(usize, ParamId, SmallVec<[usize; 2]>)>,
    next: usize,
}

impl ReadyOrder {
    /// The schedule for a backward pass from node `output`: `param_of(id)`
    /// and `inputs_of(id)` describe the tape's nodes `0..=output`.
    pub(crate) fn new<'n>(
        output: usize,
        param_of: impl Fn(usize) -> Option<ParamId>,
        inputs_of: impl Fn(usize) -> &'n [usize],
    ) -> Self {
        let mut first_user = vec![usize::MAX; output + 1];
        for id in 0..=output {
            for &i in inputs_of(id) {
                if param_of(i).is_some() {
                    first_user[i] = first_user[i].min(id);
                }
            }
        }
        let mut entries: Vec<(usize, ParamId, SmallVec<[usize; 2]>)> = Vec::new();
        for (leaf, &user) in first_user.iter().enumerate() {
            let (Some(pid), true) = (param_of(leaf), user != usize::MAX) else {
                continue;
            };
            match entries.iter_mut().find(|e| e.1 == pid) {
                Some(e) => {
                    e.0 = e.0.min(user);
                    e.2.push(leaf);
                }
                None => entries.push((user, pid, smallvec::smallvec![leaf])),
            }
        }
        // Latest first user first; ties in the order the parameters were
        // first registered, so that the order depends on the graph alone.
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        ReadyOrder { entries, next: 0 }
    }

    /// Reports every parameter that is final once the walk has processed
    /// every node after `position` (`None`: the walk is over).
    pub(crate) fn report<T: Float>(
        &mut self,
        position: Option<usize>,
        local: &[Option<Tensor<T>>],
        outer: &[(usize, OuterProduct<T>)],
        on_final: &mut dyn FnMut(ParamId, &Tensor<T>) -> Result<()>,
    ) -> Result<()> {
        while let Some((user, pid, leaves)) = self.entries.get(self.next) {
            if position.is_some_and(|p| *user <= p) {
                break;
            }
            self.next += 1;
            // One leaf with a dense gradient (the common case): lend it.
            if let [leaf] = leaves[..] {
                if let Some(g) = &local[leaf] {
                    on_final(*pid, g)?;
                    continue;
                }
            }
            let grad_of = |leaf: usize| -> Option<Tensor<T>> {
                local[leaf].clone().or_else(|| {
                    outer
                        .iter()
                        .find(|(i, _)| *i == leaf)
                        .map(|(_, o)| o.to_dense())
                })
            };
            let mut sum: Option<Tensor<T>> = None;
            for &leaf in leaves {
                if let Some(g) = grad_of(leaf) {
                    crate::tape::accumulate(&mut sum, g)?;
                }
            }
            if let Some(g) = sum {
                on_final(*pid, &g)?;
            }
        }
        Ok(())
    }
}
