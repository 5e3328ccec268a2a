//! The tape: an append-only record of every operation, walked backwards.

use crate::anomaly::{all_finite, anomaly, Phase};
use crate::op::INLINE_INPUTS;
use crate::ready::{OnFinal, ReadyOrder};
use crate::{Error, Gradients, Op, OuterProduct, Param, ParamId, Result};
use nabla_tensor::{Float, Rng, Shape, Tensor};
use smallvec::SmallVec;
use std::any::Any;
use std::cell::{Cell, RefCell, RefMut};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_TAPE: AtomicU64 = AtomicU64::new(1);

struct Node<T: Float> {
    value: Tensor<T>,
    requires_grad: bool,
    inputs: SmallVec<[usize; INLINE_INPUTS]>,
    op: Option<Box<dyn Op<T>>>,
    param: Option<ParamId>,
    /// A name given with [`Var::named`].
    label: Option<Box<str>>,
    /// 1 + the index of the scope it was recorded in; 0 for none.
    scope: u32,
}

/// One recorded node, as [`Tape::visit_nodes`] shows it.
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a, T: Float> {
    /// The node's id (its position on the tape).
    pub id: usize,
    /// The name of the op that computed it; `None` for inputs, parameters
    /// and results computed without a graph (no-grad, or constant inputs).
    pub op: Option<&'static str>,
    /// Whether the node is a parameter.
    pub is_param: bool,
    /// The parameter it holds, for a parameter node.
    pub param: Option<ParamId>,
    /// Whether gradients flow to it.
    pub requires_grad: bool,
    /// Its value.
    pub value: &'a Tensor<T>,
    /// The ids of the nodes it was computed from.
    pub inputs: &'a [usize],
    /// The name given with [`Var::named`], if any.
    pub name: Option<&'a str>,
    /// The scope (a layer) it was recorded in, if the tape records scopes.
    pub scope: Option<&'a str>,
}

/// Which part of a training batch a pass computes, when a batch is cut into
/// parts whose passes run apart (on their own tapes, perhaps on other
/// threads). Layers that keep statistics of the batch (batch norm) use it
/// to combine the parts in order, whatever order they ran in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPart {
    /// Identifies the batch: the same for all its parts, different for the
    /// next batch.
    pub batch: u64,
    /// This part's position, `0..count`.
    pub index: usize,
    /// How many parts the batch was cut into.
    pub count: usize,
}

impl<T: Float> Inner<T> {
    /// The name of scope `k` (1 + its index; 0 for none).
    fn scope_name(&self, k: u32) -> Option<&str> {
        match k {
            0 => None,
            k => Some(&self.scopes[k as usize - 1]),
        }
    }
}

struct Inner<T: Float> {
    nodes: Vec<Node<T>>,
    grad_enabled: bool,
    /// The ops of the pass before the last [`Tape::reset`], by position:
    /// an op recorded at the same position with the same type reuses the box.
    spare_ops: Vec<Option<Box<dyn Op<T>>>>,
    /// Whether [`Tape::scope`] records scope names (off: it only runs its body).
    record_scopes: bool,
    /// Names of the scopes entered in this pass, each the full path.
    scopes: Vec<Box<str>>,
    /// 1 + the index of the scope being recorded; 0 outside any.
    current_scope: u32,
    /// Whether every op's value and gradient is checked for NaN and ±∞.
    detect_anomaly: bool,
}

/// The record of one computation (usually one forward pass).
///
/// Create one per step, build the computation with [`Var`] methods, call
/// [`Tape::backward`] and drop it — or keep it and call [`Tape::reset`] before
/// the next pass: a reused tape records a pass of the same shape (a training
/// step) without allocating. Values are shared with the tensors they came
/// from, so registering a parameter copies nothing.
///
/// # Conventions
/// - A node *requires grad* when it is a [`Tape::var`] or [`Tape::param`] leaf,
///   or an op result with at least one input that requires grad, computed while
///   gradients are enabled. Constants and results computed under
///   [`Tape::no_grad`] do not, and backward never flows through them.
/// - Gradients accumulate: a node used twice receives the sum of both contributions.
pub struct Tape<T: Float = f32> {
    id: u64,
    inner: RefCell<Inner<T>>,
    /// Gradients by node during backward, kept to reuse their capacity.
    scratch: RefCell<Vec<Option<Tensor<T>>>>,
    /// Parameter gradients kept as outer products during backward, by node.
    outer_scratch: RefCell<Vec<(usize, OuterProduct<T>)>>,
    /// Randomness of the pass (dropout masks): owned by the tape so that
    /// passes running side by side draw from their own, seeded streams.
    rng: RefCell<Rng>,
    /// The part of a batch this pass computes, if the batch was cut.
    part: Cell<Option<BatchPart>>,
}

/// A handle to one node of a [`Tape`]: cheap to copy, valid while the tape lives.
pub struct Var<'t, T: Float = f32> {
    id: usize,
    tape: &'t Tape<T>,
}

impl<T: Float> Clone for Var<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Float> Copy for Var<'_, T> {}

impl<T: Float> std::fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var#{}{:?}", self.id, self.value())
    }
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Tape<T> {
    /// An empty tape with gradients enabled.
    pub fn new() -> Self {
        let id = NEXT_TAPE.fetch_add(1, Ordering::Relaxed);
        Tape {
            id,
            inner: RefCell::new(Inner {
                nodes: Vec::new(),
                grad_enabled: true,
                spare_ops: Vec::new(),
                record_scopes: false,
                scopes: Vec::new(),
                current_scope: 0,
                detect_anomaly: false,
            }),
            scratch: RefCell::new(Vec::new()),
            outer_scratch: RefCell::new(Vec::new()),
            rng: RefCell::new(Rng::seed(id)),
            part: Cell::new(None),
        }
    }

    /// Says which part of a cut batch the next pass computes (`None`: the
    /// whole batch). Cleared by [`Tape::reset`].
    pub fn set_batch_part(&self, part: Option<BatchPart>) {
        self.part.set(part);
    }

    /// The part of a batch this pass computes, if the batch was cut.
    pub fn batch_part(&self) -> Option<BatchPart> {
        self.part.get()
    }

    /// Restarts the tape's random stream from `seed`. A training loop seeds
    /// each pass (from its own seed, the step and the shard) so that dropout
    /// masks are reproducible whatever the number of threads. A new tape is
    /// seeded with its id.
    pub fn seed_rng(&self, seed: u64) {
        *self.rng.borrow_mut() = Rng::seed(seed);
    }

    /// The tape's random generator, for ops that draw (dropout).
    ///
    /// # Panics
    /// If it is already borrowed (an op drawing while another one draws).
    pub fn rng(&self) -> RefMut<'_, Rng> {
        self.rng.borrow_mut()
    }

    /// Forgets every recorded node, so the tape can record a new pass; keeps
    /// its memory (and the recorded ops, to reuse their storage). The values
    /// the nodes held are released, and recording is switched back on (as on
    /// a new tape). Gradients stores filled from the old pass keep their
    /// parameter gradients but no longer match its nodes.
    pub fn reset(&mut self) {
        self.id = NEXT_TAPE.fetch_add(1, Ordering::Relaxed);
        let inner = self.inner.get_mut();
        if inner.spare_ops.len() < inner.nodes.len() {
            inner.spare_ops.resize_with(inner.nodes.len(), || None);
        }
        for (slot, node) in inner.spare_ops.iter_mut().zip(inner.nodes.drain(..)) {
            if node.op.is_some() {
                *slot = node.op;
            }
        }
        inner.grad_enabled = true;
        inner.scopes.clear();
        inner.current_scope = 0;
        self.part.set(None);
    }

    /// A leaf that requires grad (an input you want `∂L/∂x` for).
    pub fn var(&self, value: Tensor<T>) -> Var<'_, T> {
        self.push(Node {
            value,
            requires_grad: true,
            inputs: SmallVec::new(),
            op: None,
            param: None,
            label: None,
            scope: 0,
        })
    }

    /// A leaf that never receives a gradient (data, targets).
    pub fn constant(&self, value: Tensor<T>) -> Var<'_, T> {
        self.push(Node {
            value,
            requires_grad: false,
            inputs: SmallVec::new(),
            op: None,
            param: None,
            label: None,
            scope: 0,
        })
    }

    /// A leaf for a trainable parameter; its gradient is gathered under the
    /// parameter's id (and summed if the parameter is registered twice).
    pub fn param(&self, param: &Param<T>) -> Var<'_, T> {
        let requires_grad = self.grad_enabled();
        self.push(Node {
            value: param.value().clone(),
            requires_grad,
            inputs: SmallVec::new(),
            op: None,
            param: Some(param.id()),
            label: None,
            scope: 0,
        })
    }

    /// Whether new operations are recorded for backward.
    pub fn grad_enabled(&self) -> bool {
        self.inner.borrow().grad_enabled
    }

    /// Turns recording on or off. With it off, op results are constants: cheaper
    /// (no backward state kept) and invisible to backward. Used for inference.
    pub fn set_grad_enabled(&self, enabled: bool) {
        self.inner.borrow_mut().grad_enabled = enabled;
    }

    /// Runs `f` with recording off, then restores the previous setting.
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        let before = self.grad_enabled();
        self.set_grad_enabled(false);
        let out = f();
        self.set_grad_enabled(before);
        out
    }

    /// Number of nodes recorded so far.
    pub fn len(&self) -> usize {
        self.inner.borrow().nodes.len()
    }

    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` for every node recorded so far, in creation (topological)
    /// order: what it is (the op's name, a parameter, or an input), its value
    /// and the nodes it was computed from. Reading only; for probes and
    /// inspectors that look inside a pass.
    pub fn visit_nodes(&self, mut f: impl FnMut(NodeView<'_, T>)) {
        let inner = self.inner.borrow();
        for (id, node) in inner.nodes.iter().enumerate() {
            f(NodeView {
                id,
                op: node.op.as_ref().map(|o| o.name()),
                is_param: node.param.is_some(),
                param: node.param,
                requires_grad: node.requires_grad,
                value: &node.value,
                inputs: &node.inputs,
                name: node.label.as_deref(),
                scope: match node.scope {
                    0 => None,
                    k => Some(&*inner.scopes[k as usize - 1]),
                },
            });
        }
    }

    /// Runs `op` on `inputs` and records the result. This is how every op
    /// method on [`Var`] is registered.
    ///
    /// # Errors
    /// [`Error::ForeignVar`] for an input from another tape, or the op's own error.
    pub fn apply<O: Op<T>>(&self, mut op: O, inputs: &[Var<'_, T>]) -> Result<Var<'_, T>> {
        if inputs.iter().any(|v| !std::ptr::eq(v.tape, self)) {
            return Err(Error::ForeignVar { op: op.name() });
        }
        let (values, any_requires, enabled) = {
            let inner = self.inner.borrow();
            let values: SmallVec<[Tensor<T>; INLINE_INPUTS]> = inputs
                .iter()
                .map(|v| inner.nodes[v.id].value.clone())
                .collect();
            let any = inputs.iter().any(|v| inner.nodes[v.id].requires_grad);
            (values, any, inner.grad_enabled)
        };
        let refs: SmallVec<[&Tensor<T>; INLINE_INPUTS]> = values.iter().collect();
        // The op recorded at this position before the last reset, if it has
        // this type: its box and its storage are reused.
        let position = self.inner.borrow().nodes.len();
        let mut spare = self.take_spare::<O>(position);
        if let Some(previous) = spare.as_mut().and_then(|b| downcast::<T, O>(b)) {
            op.reuse_storage(previous);
        }
        let value = op.forward(&refs)?;
        if self.detects_anomaly() && !all_finite(&value) {
            let inner = self.inner.borrow();
            return Err(anomaly(
                Phase::Forward,
                op.name(),
                position,
                inner.scope_name(inner.current_scope),
                &refs,
                &value,
                None,
                None,
            ));
        }
        let requires_grad = enabled && any_requires;
        if !requires_grad {
            if let Some(spare) = spare {
                self.inner.borrow_mut().spare_ops[position] = Some(spare);
            }
            return Ok(self.push(Node {
                value,
                requires_grad,
                inputs: SmallVec::new(),
                op: None,
                param: None,
                label: None,
                scope: 0,
            }));
        }
        let boxed = match spare {
            Some(mut b) => {
                if let Some(slot) = downcast::<T, O>(&mut b) {
                    *slot = op;
                }
                b
            }
            None => Box::new(op),
        };
        Ok(self.push(Node {
            value,
            requires_grad,
            inputs: inputs.iter().map(|v| v.id).collect(),
            op: Some(boxed),
            param: None,
            label: None,
            scope: 0,
        }))
    }

    /// Turns anomaly detection on or off (off on a new tape; kept by
    /// [`Tape::reset`]). On, every op's result and every gradient its
    /// backward returns is checked for NaN and ±∞, and the first one is an
    /// [`Error::Anomaly`] naming the op, its node, its layer (when scopes
    /// are recorded) and what its inputs held. It costs a pass over every
    /// value and gradient; off, it costs nothing.
    pub fn set_detect_anomaly(&self, on: bool) {
        self.inner.borrow_mut().detect_anomaly = on;
    }

    /// Whether anomaly detection is on.
    pub fn detects_anomaly(&self) -> bool {
        self.inner.borrow().detect_anomaly
    }

    /// Turns the recording of scope names on or off (off on a new tape). On,
    /// every node remembers the [`Tape::scope`] it was recorded in, so that an
    /// inspector or an error can name the layer; off, scopes cost nothing.
    pub fn set_record_scopes(&self, record: bool) {
        self.inner.borrow_mut().record_scopes = record;
    }

    /// Whether scope names are recorded.
    pub fn records_scopes(&self) -> bool {
        self.inner.borrow().record_scopes
    }

    /// Runs `f` inside a scope named `name()` (a layer, for example), nested
    /// in the current one. The name is built only when scopes are recorded.
    pub fn scope<R>(&self, name: impl FnOnce() -> String, f: impl FnOnce() -> R) -> R {
        if !self.records_scopes() {
            return f();
        }
        let name = name();
        let outer = {
            let mut inner = self.inner.borrow_mut();
            let outer = inner.current_scope;
            let path = match outer {
                0 => name,
                k => format!("{} / {name}", inner.scopes[k as usize - 1]),
            };
            inner.scopes.push(path.into());
            inner.current_scope = inner.scopes.len() as u32;
            outer
        };
        let out = f();
        self.inner.borrow_mut().current_scope = outer;
        out
    }

    /// The op recorded at `position` before the last reset, when it is an `O`.
    fn take_spare<O: Op<T>>(&self, position: usize) -> Option<Box<dyn Op<T>>> {
        let mut inner = self.inner.borrow_mut();
        let slot = inner.spare_ops.get_mut(position)?;
        let is_o = slot.as_mut().is_some_and(|b| downcast::<T, O>(b).is_some());
        if is_o {
            slot.take()
        } else {
            None
        }
    }

    /// Back-propagates from a one-element output (a loss) with seed gradient 1
    /// and returns a fresh gradient store.
    ///
    /// The tape is not consumed: calling backward again gives the same
    /// gradients again, and [`Tape::backward_into`] adds them to a store.
    ///
    /// # Errors
    /// [`Error::NotScalar`] if `output` has more than one element.
    pub fn backward(&self, output: Var<'_, T>) -> Result<Gradients<T>> {
        let mut grads = Gradients::new();
        self.backward_into(output, &mut grads)?;
        Ok(grads)
    }

    /// Like [`Tape::backward`] but *adds* into `grads` (PyTorch's `.grad +=`):
    /// call it for several losses or micro-batches, then zero the store with
    /// [`Gradients::zero`] (or start a new one) before the next step.
    ///
    /// # Errors
    /// As [`Tape::backward`].
    pub fn backward_into(&self, output: Var<'_, T>, grads: &mut Gradients<T>) -> Result<()> {
        let shape = output.shape();
        if shape.numel() != 1 {
            return Err(Error::NotScalar { shape });
        }
        self.backward_with_into(output, Tensor::ones(shape.dims()), grads)
    }

    /// Back-propagates from any output with an explicit seed `∂L/∂output`.
    ///
    /// # Errors
    /// [`Error::ForeignVar`], or a shape mismatch between `seed` and `output`.
    pub fn backward_with_into(
        &self,
        output: Var<'_, T>,
        seed: Tensor<T>,
        grads: &mut Gradients<T>,
    ) -> Result<()> {
        self.sweep(output, seed, grads, None)
    }

    /// Like [`Tape::backward_into`], and tells `on_final` each parameter's
    /// gradient as soon as backward has finished it, while the layers below
    /// are still being differentiated: the gradient this pass computed
    /// (summed over the parameter's registrations), once per parameter that
    /// received one, roughly the last layer first. The store receives the
    /// same gradients as from [`Tape::backward_into`]. A data-parallel step
    /// uses it to send the last layers' gradients to the other processes
    /// while the first layers' are computed.
    ///
    /// # Errors
    /// As [`Tape::backward`], and any error from `on_final`, which stops
    /// the pass.
    pub fn backward_into_observed(
        &self,
        output: Var<'_, T>,
        grads: &mut Gradients<T>,
        on_final: OnFinal<'_, T>,
    ) -> Result<()> {
        let shape = output.shape();
        if shape.numel() != 1 {
            return Err(Error::NotScalar { shape });
        }
        self.sweep(output, Tensor::ones(shape.dims()), grads, Some(on_final))
    }

    fn sweep(
        &self,
        output: Var<'_, T>,
        seed: Tensor<T>,
        grads: &mut Gradients<T>,
        mut on_final: Option<OnFinal<'_, T>>,
    ) -> Result<()> {
        if !std::ptr::eq(output.tape, self) {
            return Err(Error::ForeignVar { op: "backward" });
        }
        let inner = self.inner.borrow();
        seed.expect_shape("backward", inner.nodes[output.id].value.shape())?;
        let mut local = self.scratch.borrow_mut();
        local.clear();
        local.resize(output.id + 1, None);
        let mut outer = self.outer_scratch.borrow_mut();
        outer.clear();
        if inner.nodes[output.id].requires_grad {
            local[output.id] = Some(seed);
        }
        let mut ready = on_final.is_some().then(|| {
            ReadyOrder::new(
                output.id,
                |id| inner.nodes[id].param,
                |id| &inner.nodes[id].inputs[..],
            )
        });
        for id in (0..=output.id).rev() {
            if let (Some(ready), Some(f)) = (&mut ready, &mut on_final) {
                ready.report(Some(id), &local, &outer, &mut **f)?;
            }
            let node = &inner.nodes[id];
            let (Some(op), Some(grad)) = (&node.op, &local[id]) else {
                continue;
            };
            let grad = grad.clone();
            let input_values: SmallVec<[&Tensor<T>; INLINE_INPUTS]> =
                node.inputs.iter().map(|&i| &inner.nodes[i].value).collect();
            let mut needs: SmallVec<[bool; INLINE_INPUTS]> = node
                .inputs
                .iter()
                .map(|&i| inner.nodes[i].requires_grad)
                .collect();
            if grads.keeps_outer_products() {
                // A parameter's first (and, being used once, only)
                // gradient may stay an outer product; `needs` then spares
                // backward from forming it.
                for (slot, &input) in node.inputs.iter().enumerate() {
                    let first_use = needs[slot]
                        && inner.nodes[input].param.is_some()
                        && local[input].is_none()
                        && !outer.iter().any(|(i, _)| *i == input);
                    if !first_use {
                        continue;
                    }
                    let kept = op
                        .outer_grad(&input_values, &grad, slot)
                        .and_then(|(u, v)| {
                            OuterProduct::spanning(u, v, inner.nodes[input].value.shape())
                        });
                    if let Some(o) = kept {
                        outer.push((input, o));
                        needs[slot] = false;
                    }
                }
            }
            let input_grads = op.backward(&input_values, &node.value, &grad, &needs)?;
            if inner.detect_anomaly {
                let bad = input_grads
                    .iter()
                    .enumerate()
                    .find_map(|(k, g)| g.as_ref().filter(|g| !all_finite(g)).map(|g| (k, g)));
                if let Some((k, g)) = bad {
                    return Err(anomaly(
                        Phase::Backward,
                        op.name(),
                        id,
                        inner.scope_name(node.scope),
                        &input_values,
                        g,
                        Some(&grad),
                        Some(k),
                    ));
                }
            }
            for ((&input, g), need) in node.inputs.iter().zip(input_grads).zip(needs) {
                let (Some(g), true) = (g, need) else { continue };
                // A second use of a parameter kept as an outer product:
                // form it, so the sum runs in the order it always does.
                if let Some(at) = outer.iter().position(|(i, _)| *i == input) {
                    let (_, o) = outer.swap_remove(at);
                    local[input] = Some(o.to_dense());
                }
                accumulate(&mut local[input], g)?;
            }
        }
        if let (Some(ready), Some(f)) = (&mut ready, &mut on_final) {
            ready.report(None, &local, &outer, &mut **f)?;
        }
        grads.absorb(self.id, &mut local, &mut outer, |id| inner.nodes[id].param)
    }

    fn push(&self, mut node: Node<T>) -> Var<'_, T> {
        let mut inner = self.inner.borrow_mut();
        node.scope = inner.current_scope;
        inner.nodes.push(node);
        Var {
            id: inner.nodes.len() - 1,
            tape: self,
        }
    }

    pub(crate) fn value_of(&self, id: usize) -> Tensor<T> {
        self.inner.borrow().nodes[id].value.clone()
    }

    pub(crate) fn requires_grad_of(&self, id: usize) -> bool {
        self.inner.borrow().nodes[id].requires_grad
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

/// `slot += g`, or `slot = g` when empty.
pub(crate) fn accumulate<T: Float>(slot: &mut Option<Tensor<T>>, g: Tensor<T>) -> Result<()> {
    match slot {
        Some(acc) => acc.add_scaled_(T::ONE, &g)?,
        None => *slot = Some(g),
    }
    Ok(())
}

impl<'t, T: Float> Var<'t, T> {
    /// The tape this variable lives on.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// The node's position on its tape.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The value (shares the buffer).
    pub fn value(&self) -> Tensor<T> {
        self.tape.value_of(self.id)
    }

    /// The value's shape.
    pub fn shape(&self) -> Shape {
        self.value().shape().clone()
    }

    /// The single value of a one-element variable (e.g. a loss).
    ///
    /// # Errors
    /// If the value has more than one element.
    pub fn item(&self) -> Result<T> {
        Ok(self.value().item()?)
    }

    /// Gives the node a name, which inspectors show (`apple`, `tax`).
    pub fn named(self, name: &str) -> Self {
        self.tape.inner.borrow_mut().nodes[self.id].label = Some(name.into());
        self
    }

    /// Whether backward will compute a gradient for this node.
    pub fn requires_grad(&self) -> bool {
        self.tape.requires_grad_of(self.id)
    }

    pub(crate) fn tape_id(&self) -> u64 {
        self.tape.id()
    }
}

/// The op in `b` as an `O`, when it is one.
fn downcast<T: Float, O: Op<T>>(b: &mut Box<dyn Op<T>>) -> Option<&mut O> {
    let any: &mut dyn Any = b.as_mut();
    any.downcast_mut::<O>()
}
