//! The gradient store: gradients kept apart from values, keyed by node and by parameter.

use crate::tape::accumulate;
use crate::{Param, ParamId, Result, Var};
use nabla_tensor::{Float, Tensor};
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// Gradients produced by backward.
///
/// # Meaning
/// - [`Gradients::get`] reads `∂L/∂node` for any node of the tape that produced
///   the store, intermediate nodes included; `None` when the node does not
///   require grad or the loss does not depend on it.
/// - [`Gradients::param`] reads the gradient of a parameter, summed over every
///   place it was registered. Parameter gradients are keyed by the
///   parameter's id, so they keep accumulating across tapes (micro-batches)
///   until [`Gradients::zero`].
/// - Node gradients belong to one tape: backward into a store from another
///   tape replaces them rather than mixing graphs.
#[derive(Debug, Clone, Default)]
pub struct Gradients<T: Float = f32> {
    tape_id: u64,
    nodes: Vec<Option<Tensor<T>>>,
    params: HashMap<ParamId, Tensor<T>>,
}

impl<T: Float> Gradients<T> {
    /// An empty store.
    pub fn new() -> Self {
        Gradients {
            tape_id: 0,
            nodes: Vec::new(),
            params: HashMap::new(),
        }
    }

    /// `∂L/∂var`, if computed.
    pub fn get(&self, var: Var<'_, T>) -> Option<&Tensor<T>> {
        if var.tape_id() != self.tape_id {
            return None;
        }
        self.nodes.get(var.id()).and_then(Option::as_ref)
    }

    /// The gradient of a parameter, if the loss depended on it.
    pub fn param(&self, param: &Param<T>) -> Option<&Tensor<T>> {
        self.params.get(&param.id())
    }

    /// Mutable access to a parameter's gradient (used by clipping and regularisation).
    pub fn param_mut(&mut self, param: &Param<T>) -> Option<&mut Tensor<T>> {
        self.params.get_mut(&param.id())
    }

    /// Every parameter gradient, in no particular order.
    pub fn param_grads(&self) -> impl Iterator<Item = (&ParamId, &Tensor<T>)> {
        self.params.iter()
    }

    /// Adds another store's *parameter* gradients into this one (node
    /// gradients belong to one tape and are left alone). Used to combine the
    /// gradients of the shards of a batch, in a fixed order.
    ///
    /// # Errors
    /// If a parameter's gradients have different shapes in the two stores.
    pub fn add_param_grads(&mut self, other: &Gradients<T>) -> Result<()> {
        for (id, g) in &other.params {
            match self.params.entry(*id) {
                Entry::Occupied(mut e) => e.get_mut().add_scaled_(T::ONE, g)?,
                Entry::Vacant(e) => {
                    e.insert(g.clone());
                }
            }
        }
        Ok(())
    }

    /// Sets every stored gradient to zero, keeping the buffers for reuse.
    pub fn zero(&mut self) {
        for g in self.nodes.iter_mut().flatten() {
            g.fill_(T::ZERO);
        }
        for g in self.params.values_mut() {
            g.fill_(T::ZERO);
        }
    }

    /// Empties the store (as [`Gradients::new`] would) but keeps its memory,
    /// so that a training loop can refill it every step without allocating.
    pub fn clear(&mut self) {
        self.tape_id = 0;
        self.nodes.clear();
        self.params.clear();
    }

    /// Drops the node gradients and keeps the parameter gradients (which
    /// then no longer share buffers with node gradients, so adding into
    /// them copies nothing).
    pub fn clear_nodes(&mut self) {
        self.nodes.clear();
    }

    /// Adds the gradients of one backward pass.
    pub(crate) fn absorb(
        &mut self,
        tape_id: u64,
        local: &mut Vec<Option<Tensor<T>>>,
        param_of: impl Fn(usize) -> Option<ParamId>,
    ) -> Result<()> {
        if self.tape_id != tape_id {
            self.tape_id = tape_id;
            self.nodes.clear();
        }
        if self.nodes.len() < local.len() {
            self.nodes.resize(local.len(), None);
        }
        for (id, g) in local.drain(..).enumerate() {
            let Some(g) = g else { continue };
            if let Some(pid) = param_of(id) {
                match self.params.entry(pid) {
                    Entry::Occupied(mut e) => e.get_mut().add_scaled_(T::ONE, &g)?,
                    Entry::Vacant(e) => {
                        e.insert(g.clone());
                    }
                }
            }
            accumulate(&mut self.nodes[id], g)?;
        }
        Ok(())
    }
}
