//! The gradient store: gradients kept apart from values, keyed by node and by parameter.

use crate::tape::accumulate;
use crate::{Param, ParamId, Result, Var};
use nabla_tensor::{gemm_slices, Float, Shape, Tensor, Transpose};
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
/// - A store told to [`Gradients::keep_outer_products`] may hold a
///   parameter's gradient as the two vectors of an outer product instead
///   (a weight's gradient at batch 1); [`Gradients::param_grad`] reads
///   either form.
#[derive(Debug, Clone, Default)]
pub struct Gradients<T: Float = f32> {
    tape_id: u64,
    nodes: Vec<Option<Tensor<T>>>,
    params: HashMap<ParamId, Tensor<T>>,
    outer: HashMap<ParamId, OuterProduct<T>>,
    keep_outer: bool,
}

/// A gradient `u vᵀ` held as its two vectors, not yet formed: the weight
/// gradient of a matrix product on one row (`∂L/∂W = gᵀ x` at batch 1).
/// Forming it writes a whole weight-sized buffer, which plain SGD can skip
/// by subtracting `lr · uᵢ · v` from each row of the weight directly.
#[derive(Debug, Clone)]
pub struct OuterProduct<T: Float> {
    u: Tensor<T>,
    v: Tensor<T>,
    shape: Shape,
}

impl<T: Float> OuterProduct<T> {
    /// `u vᵀ` for a parameter of `shape`, if the vectors span it (a rank-2
    /// shape of `u.len() × v.len()`).
    pub(crate) fn spanning(u: Tensor<T>, v: Tensor<T>, shape: &Shape) -> Option<Self> {
        (shape.dims() == [u.len(), v.len()]).then(|| OuterProduct {
            u,
            v,
            shape: shape.clone(),
        })
    }

    /// The column vector, one element per row of the gradient.
    pub fn u(&self) -> &[T] {
        self.u.data()
    }

    /// The row vector, one element per column of the gradient.
    pub fn v(&self) -> &[T] {
        self.v.data()
    }

    /// The shape of the gradient (that of its parameter).
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The number of elements of the gradient.
    pub fn len(&self) -> usize {
        self.shape.numel()
    }

    /// Whether the gradient has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The gradient formed: the same bits backward gives when it is not
    /// asked to keep outer products (the same one-row product kernel).
    pub fn to_dense(&self) -> Tensor<T> {
        let mut dense = Tensor::zeros(self.shape.dims());
        let (m, n) = (self.u().len(), self.v().len());
        gemm_slices(
            dense.data_mut(),
            self.u(),
            Transpose::No,
            self.v(),
            Transpose::No,
            (m, 1, n),
            false,
        )
        .expect("u and v span the gradient's shape (checked when it was kept)");
        dense
    }
}

/// A parameter's gradient in the form the store holds it.
#[derive(Debug, Clone, Copy)]
pub enum ParamGrad<'a, T: Float> {
    /// Every element stored.
    Dense(&'a Tensor<T>),
    /// An outer product not yet formed.
    Outer(&'a OuterProduct<T>),
}

impl<T: Float> ParamGrad<'_, T> {
    /// The number of elements of the gradient.
    pub fn len(&self) -> usize {
        match self {
            ParamGrad::Dense(t) => t.len(),
            ParamGrad::Outer(o) => o.len(),
        }
    }

    /// Whether the gradient has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Float> Gradients<T> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether backward may keep a parameter's gradient as an outer product
    /// (see [`OuterProduct`]) rather than forming it; off by default. Only
    /// a parameter with a single use whose op offers the form (a matrix
    /// product on one row, [`crate::Op::outer_grad`]) is kept so; every
    /// other gradient is formed as usual. A reader of such a store must use
    /// [`Gradients::param_grad`]: [`Gradients::param`] sees formed
    /// gradients only, and [`Gradients::get`] has no node gradient for a
    /// parameter whose gradient was kept.
    pub fn keep_outer_products(&mut self, keep: bool) {
        self.keep_outer = keep;
    }

    /// Whether this store keeps outer products (see
    /// [`Gradients::keep_outer_products`]).
    pub fn keeps_outer_products(&self) -> bool {
        self.keep_outer
    }

    /// `∂L/∂var`, if computed.
    pub fn get(&self, var: Var<'_, T>) -> Option<&Tensor<T>> {
        if var.tape_id() != self.tape_id {
            return None;
        }
        self.nodes.get(var.id()).and_then(Option::as_ref)
    }

    /// Whether every parameter gradient held (formed or as an outer
    /// product) is finite.
    pub fn params_finite(&self) -> bool {
        let finite = all_finite::<T>;
        self.params.values().all(|t| finite(t.data()))
            && self.outer.values().all(|o| finite(o.u()) && finite(o.v()))
    }

    /// `∂L/∂node` for node `id` of the tape `tape_id`, if computed.
    pub(crate) fn node(&self, tape_id: u64, id: usize) -> Option<&Tensor<T>> {
        if tape_id != self.tape_id {
            return None;
        }
        self.nodes.get(id).and_then(Option::as_ref)
    }

    /// The gradient of a parameter, if the loss depended on it and it is
    /// formed (always, unless the store keeps outer products).
    pub fn param(&self, param: &Param<T>) -> Option<&Tensor<T>> {
        self.params.get(&param.id())
    }

    /// The gradient of a parameter in either form, if the loss depended on it.
    pub fn param_grad(&self, param: &Param<T>) -> Option<ParamGrad<'_, T>> {
        let id = param.id();
        self.params
            .get(&id)
            .map(ParamGrad::Dense)
            .or_else(|| self.outer.get(&id).map(ParamGrad::Outer))
    }

    /// Mutable access to a parameter's gradient (used by clipping and
    /// regularisation); one held as an outer product is formed first.
    pub fn param_mut(&mut self, param: &Param<T>) -> Option<&mut Tensor<T>> {
        let id = param.id();
        if let Some(o) = self.outer.remove(&id) {
            self.params.insert(id, o.to_dense());
        }
        self.params.get_mut(&id)
    }

    /// Sets a parameter's gradient to `values` (its elements in the
    /// parameter's layout), reusing the buffer it has: how a gradient
    /// computed elsewhere (another process's part of a batch) joins a store.
    ///
    /// # Errors
    /// If `values` does not have the parameter's number of elements.
    pub fn set_param(&mut self, param: &Param<T>, values: &[T]) -> Result<()> {
        let value = param.value();
        if values.len() != value.len() {
            return Err(crate::Error::invalid(
                "set_param",
                format!(
                    "{} values for a parameter of shape {}",
                    values.len(),
                    value.shape()
                ),
            ));
        }
        let id = param.id();
        self.outer.remove(&id);
        match self.params.get_mut(&id) {
            Some(g) if g.len() == values.len() => g.data_mut().copy_from_slice(values),
            _ => {
                let g = Tensor::from_fill(value.dims(), |v| v.extend_from_slice(values))?;
                self.params.insert(id, g);
            }
        }
        Ok(())
    }

    /// Every formed parameter gradient, in no particular order.
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
            self.add_param(*id, g.clone())?;
        }
        for (id, o) in &other.outer {
            self.add_param(*id, o.to_dense())?;
        }
        Ok(())
    }

    /// Adds a formed gradient to a parameter's, forming a kept outer
    /// product first.
    fn add_param(&mut self, id: ParamId, g: Tensor<T>) -> Result<()> {
        if let Some(o) = self.outer.remove(&id) {
            self.params.insert(id, o.to_dense());
        }
        match self.params.entry(id) {
            Entry::Occupied(mut e) => e.get_mut().add_scaled_(T::ONE, &g)?,
            Entry::Vacant(e) => {
                e.insert(g);
            }
        }
        Ok(())
    }

    /// Sets every stored gradient to zero, keeping the buffers for reuse (a
    /// gradient kept as an outer product has no buffer: it is dropped).
    pub fn zero(&mut self) {
        for g in self.nodes.iter_mut().flatten() {
            g.fill_(T::ZERO);
        }
        for g in self.params.values_mut() {
            g.fill_(T::ZERO);
        }
        self.outer.clear();
    }

    /// Empties the store (as [`Gradients::new`] would) but keeps its memory
    /// and whether it keeps outer products, so that a training loop can
    /// refill it every step without allocating.
    pub fn clear(&mut self) {
        self.tape_id = 0;
        self.nodes.clear();
        self.params.clear();
        self.outer.clear();
    }

    /// Drops the node gradients and keeps the parameter gradients (which
    /// then no longer share buffers with node gradients, so adding into
    /// them copies nothing).
    pub fn clear_nodes(&mut self) {
        self.nodes.clear();
    }

    /// Adds the gradients of one backward pass: the formed ones in `local`,
    /// by node, and the outer products backward kept, by node.
    pub(crate) fn absorb(
        &mut self,
        tape_id: u64,
        local: &mut Vec<Option<Tensor<T>>>,
        outer: &mut Vec<(usize, OuterProduct<T>)>,
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
                self.add_param(pid, g.clone())?;
            }
            accumulate(&mut self.nodes[id], g)?;
        }
        for (id, o) in outer.drain(..) {
            let Some(pid) = param_of(id) else { continue };
            if self.params.contains_key(&pid) || self.outer.contains_key(&pid) {
                // A gradient from an earlier pass: the sum is formed.
                self.add_param(pid, o.to_dense())?;
            } else {
                self.outer.insert(pid, o);
            }
        }
        Ok(())
    }
}

/// Whether every element of `d` is finite, in one vectorised pass: `v − v`
/// is 0 for a finite `v` and NaN otherwise, summed in 16 independent lanes
/// (a short-circuiting test per element would not vectorise, and the
/// training step runs this over every gradient).
#[allow(clippy::eq_op)] // v − v is the test itself.
pub fn all_finite<T: Float>(d: &[T]) -> bool {
    const LANES: usize = 16;
    let mut acc = [T::ZERO; LANES];
    let chunks = d.chunks_exact(LANES);
    let rest = chunks.remainder().iter().all(|v| v.is_finite());
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += v - v;
        }
    }
    rest && acc.iter().all(|a| *a == T::ZERO)
}
