//! Each op's local derivative rule, in the words of the material: what a
//! node does with the gradient `g = ∂L/∂output` that reaches it.

/// The local rule of the op named `op` (as `Op::name` gives it).
pub fn rule(op: &str) -> &'static str {
    match op {
        "add" => "∂/∂a = 1, ∂/∂b = 1: passes g on to both inputs unchanged (summed over broadcast axes)",
        "sub" => "∂/∂a = 1, ∂/∂b = −1: passes g to a, −g to b",
        "mul" => "∂/∂a = b, ∂/∂b = a: each input gets g times the other input (the inputs swap)",
        "div" => "∂/∂a = 1/b, ∂/∂b = −a/b²",
        "neg" => "∂/∂x = −1",
        "add_scalar" => "∂/∂x = 1: passes g on",
        "mul_scalar" => "∂/∂x = c: g times the constant",
        "sum" => "∂/∂x = 1 for every element: g is copied to each",
        "mean" => "∂/∂x = 1/n for every element",
        "matmul" => "Y = A·B: ∂L/∂A = g·Bᵀ, ∂L/∂B = Aᵀ·g",
        "exp" => "∂/∂x = exp(x) = y",
        "log" => "∂/∂x = 1/x",
        "sqrt" => "∂/∂x = 1/(2·√x)",
        "abs" => "∂/∂x = sign(x)",
        "relu" => "∂/∂x = 1 where x > 0, else 0: a mask that lets g through where the input was positive",
        "tanh" => "∂/∂x = 1 − y²",
        "sigmoid" => "∂/∂x = y·(1 − y): at most 0.25, so g shrinks at every sigmoid",
        "pow" => "∂/∂x = p·x^(p−1)",
        "softmax" => "∂L/∂x = y ⊙ (g − Σ g⊙y)",
        "log_softmax" => "∂L/∂x = g − softmax(x)·Σg",
        "softmax_cross_entropy" => "∂L/∂x = (softmax(x) − t) / N: what the output wants, probability minus target",
        "conv2d" => "∂L/∂W = input windows correlated with g, ∂L/∂x = g convolved with the flipped kernels, ∂L/∂b = Σ g",
        "max_pool2d" => "∂L/∂x = g at the largest input of each window, 0 elsewhere",
        "avg_pool2d" => "∂L/∂x = g / (window size), spread over each window",
        "batch_norm" => "∂L/∂x = γ/(m·σ)·(m·g − Σg − x̂·Σ(g·x̂)), ∂L/∂γ = Σ g·x̂, ∂L/∂β = Σ g",
        "reshape" => "∂L/∂x = g reshaped back",
        "permute" => "∂L/∂x = g with the axes put back",
        "gather_rows" => "∂L/∂x: each gathered row's g added back to the row it came from",
        _ => "(no rule on record for this op)",
    }
}
