using WinTok.Checkpoints.Pickle;
using static TorchSharp.torch;

namespace WinTok.Checkpoints;

/// <summary>
/// A training checkpoint in the layout the reference <c>train.py</c> saves (markywg/WinTok
/// examples/train_tokenizer/train.py and trainer.py <c>state_dict</c>):
/// <code>
/// {'args': OrderedDict(...), 'epoch': int, 'iter': int,
///  'trainer': {'config': {...}, 'unitok': state_dict, 'disc': state_dict,
///              'unitok_optim': {'optimizer': AdamW.state_dict()}, 'disc_optim': {'optimizer': ...}}}
/// </code>
/// Written by <see cref="CheckpointFile.WritePyTorch(string, TrainingCheckpoint)"/>; the reference's
/// <c>ckpt['trainer']['unitok']</c> loaders and <see cref="CheckpointFile.Read"/> read it back.
/// </summary>
/// <param name="Args">The hyperparameters, written as an OrderedDict like <c>Tap.state_dict()</c>; values follow
/// <see cref="CheckpointFile.WritePyTorch(string, IReadOnlyDictionary{string, object})"/>'s value model, so a
/// <see cref="ScalarType"/> becomes a dtype such as <c>torch.bfloat16</c>.</param>
/// <param name="Model">The tokenizer's state_dict (<c>trainer['unitok']</c>).</param>
/// <remarks>
/// One read by <see cref="CheckpointFile.ReadTraining"/> owns its tensors: dispose it. One built around live tensors
/// (a model's state_dict) to be written is not disposed by its writer.
/// </remarks>
public sealed record TrainingCheckpoint(IReadOnlyDictionary<string, object?> Args, IReadOnlyDictionary<string, Tensor> Model) : IDisposable
{
    /// <summary>The epoch the checkpoint was taken in.</summary>
    public long Epoch { get; init; }

    /// <summary>The iteration within <see cref="Epoch"/> (the reference's <c>'iter'</c>).</summary>
    public long Iteration { get; init; }

    /// <summary>The trainer's loss weights (<c>trainer['config']</c>: dcrit, wei_l1, ...).</summary>
    public IReadOnlyDictionary<string, object?> TrainerConfig { get; init; } = new Dictionary<string, object?>();

    /// <summary>The discriminator's state_dict (<c>trainer['disc']</c>), omitted when null.</summary>
    public IReadOnlyDictionary<string, Tensor>? Discriminator { get; init; }

    /// <summary>The tokenizer's optimizer (<c>trainer['unitok_optim']['optimizer']</c>), omitted when null.</summary>
    public AdamWState? ModelOptimizer { get; init; }

    /// <summary>The discriminator's optimizer (<c>trainer['disc_optim']['optimizer']</c>), omitted when null.</summary>
    public AdamWState? DiscriminatorOptimizer { get; init; }

    /// <summary>
    /// Entries after <c>trainer</c> at the top level (the reference's loaders read only <c>args</c>, <c>epoch</c>,
    /// <c>iter</c> and <c>trainer</c>, so extra keys do not disturb them). Values follow the writer's value model.
    /// </summary>
    public IReadOnlyDictionary<string, object?> Extra { get; init; } = new Dictionary<string, object?>();

    /// <summary>Disposes every tensor the checkpoint holds (those of <see cref="Extra"/> included).</summary>
    public void Dispose()
    {
        foreach (var tensor in Model.Values.Concat(Discriminator?.Values ?? [])) tensor.Dispose();
        ModelOptimizer?.Dispose();
        DiscriminatorOptimizer?.Dispose();
        DisposeTensors(Extra);
    }

    private static void DisposeTensors(object? value)
    {
        switch (value)
        {
            case Tensor tensor:
                tensor.Dispose();
                break;
            case IReadOnlyDictionary<string, Tensor> tensors:
                foreach (var tensor in tensors.Values) tensor.Dispose();
                break;
            case IReadOnlyDictionary<string, object?> dict:
                foreach (var item in dict.Values) DisposeTensors(item);
                break;
            case IEnumerable<object?> items:
                foreach (var item in items) DisposeTensors(item);
                break;
        }
    }

    internal IReadOnlyDictionary<string, object?> ToPickleTree()
    {
        // The reference trainer skips the parts it does not have, in this order.
        var trainer = new OrderedDictionary<string, object?> { ["config"] = TrainerConfig, ["unitok"] = Model };
        if (Discriminator is not null)
        {
            trainer["disc"] = Discriminator;
        }
        if (ModelOptimizer is not null)
        {
            trainer["unitok_optim"] = new Dictionary<string, object?> { ["optimizer"] = ModelOptimizer.ToPickleTree() };
        }
        if (DiscriminatorOptimizer is not null)
        {
            trainer["disc_optim"] = new Dictionary<string, object?> { ["optimizer"] = DiscriminatorOptimizer.ToPickleTree() };
        }
        var top = new OrderedDictionary<string, object?>
        {
            ["args"] = new OrderedDictValue(Args),
            ["epoch"] = Epoch,
            ["iter"] = Iteration,
            ["trainer"] = trainer,
        };
        foreach (var (key, value) in Extra)
        {
            if (!top.TryAdd(key, value)) throw new ArgumentException($"The extra top-level key '{key}' is one of the reference layout's own keys");
        }
        return top;
    }
}

/// <summary>
/// <c>torch.optim.AdamW.state_dict()</c> (PyTorch 2.6 to 2.11): <c>{'state': {index: {'step', 'exp_avg',
/// 'exp_avg_sq'[, 'max_exp_avg_sq']}}, 'param_groups': [{'lr', 'betas', 'eps', 'weight_decay', 'amsgrad',
/// 'maximize', 'foreach', 'capturable', 'differentiable', 'fused', 'decoupled_weight_decay', ..., 'params'}]}</c>.
/// Parameter indices count through the groups in order, as PyTorch numbers them.
/// </summary>
/// <param name="State">Per parameter index, the moments of every parameter that has taken a step.</param>
/// <param name="ParamGroups">The groups; together their <see cref="AdamWParamGroup.Params"/> list each index once.</param>
public sealed record AdamWState(IReadOnlyDictionary<int, AdamWParamState> State, IReadOnlyList<AdamWParamGroup> ParamGroups) : IDisposable
{
    /// <summary>Disposes the moments' tensors.</summary>
    public void Dispose()
    {
        foreach (var moments in State.Values)
        {
            moments.Step.Dispose();
            moments.ExpAvg.Dispose();
            moments.ExpAvgSq.Dispose();
            moments.MaxExpAvgSq?.Dispose();
        }
    }

    internal IReadOnlyDictionary<string, object?> ToPickleTree()
    {
        var owners = new Dictionary<int, int>();
        for (int group = 0; group < ParamGroups.Count; group++)
        {
            foreach (int index in ParamGroups[group].Params)
            {
                if (!owners.TryAdd(index, group))
                {
                    throw new ArgumentException($"Parameter index {index} is in param group {owners[index]} and in group {group}");
                }
            }
        }
        var state = new OrderedDictionary<int, object?>();
        foreach (var (index, moments) in State.OrderBy(pair => pair.Key))
        {
            if (!owners.ContainsKey(index))
            {
                throw new ArgumentException($"The optimizer state has parameter index {index}, which no param group lists");
            }
            state[index] = moments.ToPickleTree(index);
        }
        return new OrderedDictionary<string, object?>
        {
            ["state"] = state,
            ["param_groups"] = ParamGroups.Select(group => group.ToPickleTree()).ToList(),
        };
    }
}

/// <summary>One parameter's AdamW state, as PyTorch keeps it.</summary>
/// <param name="Step">The step count as a scalar tensor (PyTorch: float32, shape []).</param>
/// <param name="ExpAvg">The first moment, shaped like the parameter.</param>
/// <param name="ExpAvgSq">The second moment, shaped like the parameter.</param>
/// <param name="MaxExpAvgSq">The running maximum of the second moment; only with amsgrad.</param>
public sealed record AdamWParamState(Tensor Step, Tensor ExpAvg, Tensor ExpAvgSq, Tensor? MaxExpAvgSq = null)
{
    internal IReadOnlyDictionary<string, object?> ToPickleTree(int index)
    {
        if (Step.numel() != 1 || Step.dim() != 0)
        {
            throw new ArgumentException($"The step of parameter {index} must be a scalar tensor, not shape [{string.Join(", ", Step.shape)}]");
        }
        if (!ExpAvg.shape.SequenceEqual(ExpAvgSq.shape))
        {
            throw new ArgumentException(
                $"Parameter {index} has exp_avg [{string.Join(", ", ExpAvg.shape)}] but exp_avg_sq [{string.Join(", ", ExpAvgSq.shape)}]");
        }
        var state = new OrderedDictionary<string, object?> { ["step"] = Step, ["exp_avg"] = ExpAvg, ["exp_avg_sq"] = ExpAvgSq };
        if (MaxExpAvgSq is not null)
        {
            state["max_exp_avg_sq"] = MaxExpAvgSq;
        }
        return state;
    }
}

/// <summary>An AdamW param group: the hyperparameters of <c>torch.optim.AdamW</c>, with PyTorch's defaults.</summary>
/// <param name="Params">The indices of the group's parameters.</param>
public sealed record AdamWParamGroup(IReadOnlyList<int> Params)
{
    /// <value>PyTorch's default: 1e-3.</value>
    public double Lr { get; init; } = 1e-3;

    /// <value>PyTorch's default: 0.9.</value>
    public double Beta1 { get; init; } = 0.9;

    /// <value>PyTorch's default: 0.999.</value>
    public double Beta2 { get; init; } = 0.999;

    /// <value>PyTorch's default: 1e-8.</value>
    public double Eps { get; init; } = 1e-8;

    /// <value>PyTorch's AdamW default: 1e-2.</value>
    public double WeightDecay { get; init; } = 1e-2;

    public bool Amsgrad { get; init; }

    public bool Maximize { get; init; }

    /// <value>None (null) lets PyTorch choose.</value>
    public bool? Foreach { get; init; }

    public bool Capturable { get; init; }

    public bool Differentiable { get; init; }

    /// <value>None (null) lets PyTorch choose; the reference passes <c>args.fuse_opt</c>.</value>
    public bool? Fused { get; init; }

    /// <value>True: AdamW is Adam with decoupled weight decay (PyTorch ≥ 2.7 stores the flag; 2.6 ignores it).</value>
    public bool DecoupledWeightDecay { get; init; } = true;

    /// <summary>Keys a training script adds to its groups (the reference's <c>init_lr</c>), written before <c>params</c>.</summary>
    public IReadOnlyDictionary<string, object?> Extra { get; init; } = new Dictionary<string, object?>();

    internal IReadOnlyDictionary<string, object?> ToPickleTree()
    {
        // Optimizer.state_dict() keeps the group's keys in order and moves 'params' last.
        var group = new OrderedDictionary<string, object?>
        {
            ["lr"] = Lr,
            ["betas"] = (Beta1, Beta2),
            ["eps"] = Eps,
            ["weight_decay"] = WeightDecay,
            ["amsgrad"] = Amsgrad,
            ["maximize"] = Maximize,
            ["foreach"] = Foreach,
            ["capturable"] = Capturable,
            ["differentiable"] = Differentiable,
            ["fused"] = Fused,
            ["decoupled_weight_decay"] = DecoupledWeightDecay,
        };
        foreach (var (key, value) in Extra)
        {
            if (key == "params" || !group.TryAdd(key, value))
            {
                throw new ArgumentException($"The param group's extra key '{key}' is one of AdamW's own keys");
            }
        }
        group["params"] = Params.ToList();
        return group;
    }
}
