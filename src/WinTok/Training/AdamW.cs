using TorchSharp;
using TorchSharp.Modules;
using WinTok.Cuda;
using static TorchSharp.torch;

namespace WinTok.Training;

/// <summary>A named set of parameters sharing a weight decay; the learning rate is set on the group every iteration.</summary>
public sealed class ParameterGroup(string name, IReadOnlyList<(string Name, Parameter Parameter)> parameters, double weightDecay, double initialLearningRate)
{
    public string Name { get; } = name;

    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters { get; } = parameters;

    public double WeightDecay { get; } = weightDecay;

    /// <summary>The reference's <c>init_lr</c>: the schedule multiplies it.</summary>
    public double InitialLearningRate { get; } = initialLearningRate;

    public double LearningRate { get; set; } = initialLearningRate;
}

/// <summary>
/// AdamW (Loshchilov and Hutter, "Decoupled Weight Decay Regularization", 2019) exactly as torch 2.x's single-tensor
/// <c>Adam(decoupled_weight_decay=True)</c> updates a parameter, which is what the reference's <c>torch.optim.AdamW</c>
/// runs on CPU (not fused; foreach only on GPUs, the same arithmetic batched):
/// <c>p *= 1 - lr wd; m.lerp_(g, 1 - b1); v = v b2 + (1 - b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)</c>.
/// Written here rather than TorchSharp's AdamW for two reasons: TorchSharp updates <c>m</c> as
/// <c>m b1 + (1 - b1) g</c>, which rounds differently from torch's <c>lerp_</c>, and its state is not reachable as
/// plain tensors, which checkpoints and resume need (<see cref="CaptureState"/>).
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly Dictionary<Parameter, MomentState> state = new(ReferenceEqualityComparer.Instance);

    // 1 - beta1 as a tensor per dtype and device, made once: creating it per parameter copied a scalar to the GPU
    // for each of the ~900 parameters, and each such copy waits for the device (a step took 130 ms on the H200).
    private readonly Dictionary<(ScalarType, DeviceType, int), Tensor> lerpWeights = [];

    public AdamW(IReadOnlyList<ParameterGroup> groups, double beta1, double beta2, double eps)
    {
        ArgumentNullException.ThrowIfNull(groups);
        if (beta1 is < 0 or >= 1 || beta2 is < 0 or >= 1) throw new ArgumentException($"Betas must be in [0, 1), got {beta1}, {beta2}");
        if (eps <= 0) throw new ArgumentException($"eps must be positive, got {eps}");
        var duplicates = groups.SelectMany(g => g.Parameters).GroupBy(p => p.Name).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (duplicates.Count > 0) throw new ArgumentException("Parameters in more than one group: " + string.Join(", ", duplicates));
        Groups = groups;
        (Beta1, Beta2, Eps) = (beta1, beta2, eps);
    }

    public IReadOnlyList<ParameterGroup> Groups { get; }

    /// <summary>Whether GPU float32 parameters take the fused kernels (benchmarks turn it off to check them against the op-by-op path).</summary>
    internal bool UseFusedKernels { get; init; } = true;

    public double Beta1 { get; }

    public double Beta2 { get; }

    public double Eps { get; }

    /// <summary>Every parameter, in group order.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> Parameters => Groups.SelectMany(g => g.Parameters);

    /// <summary>
    /// Clips the gradients to a joint 2-norm of <paramref name="maxNorm"/> (when positive; torch's
    /// <c>clip_grad_norm_</c>) and steps; returns the norm before clipping when it clipped. Float32 parameters on the GPU
    /// take two fused kernels (<see cref="FusedAdamW"/>); anything else the tensor-by-tensor path.
    /// </summary>
    public float? ClipAndStep(double maxNorm)
    {
        using var scope = NewDisposeScope(); // releases the gradient handles read below
        var stepped = Groups.SelectMany(g => g.Parameters.Select(p => (Group: g, p.Parameter, Gradient: p.Parameter.grad)))
            .Where(p => p.Gradient is not null).ToList();
        if (UseFusedKernels && FusedAdamW.Shared is { } fused && stepped.Count > 0
            && stepped.All(p => FusedAdamW.Supports(p.Parameter) && FusedAdamW.Supports(p.Gradient!)))
        {
            var items = stepped.Select(p =>
            {
                var moments = MomentsOf(p.Parameter);
                moments.Step += 1;
                var lr = p.Group.LearningRate;
                return new FusedAdamW.Item(p.Parameter, p.Gradient!, moments.ExpAvg, moments.ExpAvgSq,
                    p.Group.WeightDecay != 0 ? 1 - lr * p.Group.WeightDecay : 1.0,
                    lr / (1 - Math.Pow(Beta1, moments.Step)), Math.Pow(1 - Math.Pow(Beta2, moments.Step), 0.5));
            }).ToList();
            return fused.ClipAndStep(items, maxNorm, Beta1, Beta2, Eps);
        }
        float? norm = maxNorm > 0 ? GradientClipping.ClipGradNorm(stepped.Select(p => p.Parameter), maxNorm) : null;
        Step();
        return norm;
    }

    private MomentState MomentsOf(Parameter parameter)
    {
        if (!state.TryGetValue(parameter, out var moments))
        {
            using var noGrad = no_grad();
            moments = new MomentState(zeros_like(parameter).DetachFromDisposeScope(), zeros_like(parameter).DetachFromDisposeScope());
            state[parameter] = moments;
        }
        return moments;
    }

    /// <summary>One update of every parameter that has a gradient; parameters without one are left alone, as torch does.</summary>
    public void Step()
    {
        using var noGrad = no_grad();
        foreach (var group in Groups)
        {
            var lr = group.LearningRate;
            foreach (var (_, parameter) in group.Parameters)
            {
                using var scope = NewDisposeScope(); // also releases the grad handle read below
                var grad = parameter.grad;
                if (grad is null) continue;
                var moments = MomentsOf(parameter);
                moments.Step += 1;
                if (group.WeightDecay != 0) parameter.mul_(1 - lr * group.WeightDecay);
                // lerp_ with a scalar weight; TorchSharp binds only the tensor-weight overload, which computes the
                // same lerp with the weight rounded to the parameter's dtype, as the scalar overload does.
                moments.ExpAvg.lerp_(grad, LerpWeight(parameter));
                moments.ExpAvgSq.mul_(Beta2).addcmul_(grad, grad, 1 - Beta2);
                var biasCorrection1 = 1 - Math.Pow(Beta1, moments.Step);
                var biasCorrection2 = 1 - Math.Pow(Beta2, moments.Step);
                var stepSize = lr / biasCorrection1;
                var denominator = (moments.ExpAvgSq.sqrt() / Math.Pow(biasCorrection2, 0.5)).add_(Eps);
                parameter.addcdiv_(moments.ExpAvg, denominator, -stepSize);
            }
        }
    }

    private Tensor LerpWeight(Tensor parameter)
    {
        var key = (parameter.dtype, parameter.device_type, parameter.device_index);
        if (!lerpWeights.TryGetValue(key, out var weight))
        {
            weight = tensor(1 - Beta1, parameter.dtype, parameter.device).DetachFromDisposeScope();
            lerpWeights[key] = weight;
        }
        return weight;
    }

    /// <summary>Drops every gradient (torch's <c>zero_grad(set_to_none=True)</c>).</summary>
    public void ZeroGrad()
    {
        foreach (var (_, parameter) in Parameters)
        {
            using var grad = parameter.grad;
            if (grad is not null) parameter.grad = null;
        }
    }

    /// <summary>
    /// Copies of the moments of every parameter that has been stepped, by parameter name, on the parameters' device or
    /// on <paramref name="device"/> (each moment copied straight there, so no second device copy of the state exists).
    /// </summary>
    public IReadOnlyDictionary<string, AdamMoments> CaptureState(Device? device = null)
    {
        using var noGrad = no_grad();
        static Tensor Copy(Tensor moment, Device? device) =>
            (device is null || (moment.device_type == device.type && moment.device_index == device.index) ? moment.detach().clone() : moment.detach().to(device))
            .DetachFromDisposeScope();
        var result = new Dictionary<string, AdamMoments>();
        foreach (var (name, parameter) in Parameters)
            if (state.TryGetValue(parameter, out var moments))
                result[name] = new AdamMoments(moments.Step, Copy(moments.ExpAvg, device), Copy(moments.ExpAvgSq, device));
        return result;
    }

    /// <summary>
    /// Replaces the moments with <paramref name="moments"/> (copied onto each parameter's device). Parameters absent
    /// from it start fresh; a name that is not a parameter, or a misshaped moment, fails naming it.
    /// </summary>
    public void RestoreState(IReadOnlyDictionary<string, AdamMoments> moments)
    {
        ArgumentNullException.ThrowIfNull(moments);
        var byName = Parameters.ToDictionary(p => p.Name, p => p.Parameter);
        var unknown = moments.Keys.Where(name => !byName.ContainsKey(name)).ToList();
        if (unknown.Count > 0) throw new ArgumentException("Optimizer state for unknown parameters: " + string.Join(", ", unknown));
        foreach (var (name, m) in moments)
        {
            var parameter = byName[name];
            if (!m.ExpAvg.shape.SequenceEqual(parameter.shape) || !m.ExpAvgSq.shape.SequenceEqual(parameter.shape))
                throw new ArgumentException($"Optimizer state for {name}: moments ({string.Join(", ", m.ExpAvg.shape)}) and ({string.Join(", ", m.ExpAvgSq.shape)}), parameter ({string.Join(", ", parameter.shape)})");
        }
        ClearState();
        using var noGrad = no_grad();
        foreach (var (name, m) in moments)
        {
            var parameter = byName[name];
            state[parameter] = new MomentState(
                m.ExpAvg.to(parameter.dtype, parameter.device).clone().DetachFromDisposeScope(),
                m.ExpAvgSq.to(parameter.dtype, parameter.device).clone().DetachFromDisposeScope())
            { Step = m.Step };
        }
    }

    public void Dispose()
    {
        ClearState();
        foreach (var weight in lerpWeights.Values) weight.Dispose();
        lerpWeights.Clear();
    }

    private void ClearState()
    {
        foreach (var moments in state.Values)
        {
            moments.ExpAvg.Dispose();
            moments.ExpAvgSq.Dispose();
        }
        state.Clear();
    }

    private sealed class MomentState(Tensor expAvg, Tensor expAvgSq)
    {
        public Tensor ExpAvg { get; } = expAvg;

        public Tensor ExpAvgSq { get; } = expAvgSq;

        /// <summary>torch keeps the count as a float32 tensor and reads it back as a Python float.</summary>
        public double Step { get; set; }
    }
}

/// <summary>One parameter's AdamW state as plain values: the step count and both moments (owned by the holder).</summary>
public sealed record AdamMoments(double Step, Tensor ExpAvg, Tensor ExpAvgSq) : IDisposable
{
    public void Dispose()
    {
        ExpAvg.Dispose();
        ExpAvgSq.Dispose();
    }
}
