using WinTok.Checkpoints.Pickle;
using static TorchSharp.torch;

namespace WinTok.Checkpoints;

/// <summary>
/// Reads a whole training checkpoint in the reference layout (<see cref="TrainingCheckpoint"/>) from one
/// <c>torch.save</c> zip: args, epoch and iteration, the trainer's config, both state_dicts, both AdamW states and any
/// extra top-level entries (tensors and dicts of tensors materialised, other values as <see cref="Checkpoint.Args"/>
/// holds them). The pickle is read once; each storage is read when its tensor is.
/// </summary>
internal static class TrainingCheckpointReader
{
    public static TrainingCheckpoint Read(string path, Stream file)
    {
        using var zip = PthReader.OpenZip(path, file);
        var (top, prefix) = PthReader.LoadPickle(path, zip);
        var storages = PthReader.ZipStorages(path, zip, prefix);
        // One materializer per state_dict: a materializer's storage cache lives in its call's dispose scope.
        Dictionary<string, Tensor> Tensors(PyDict dict) => new TensorMaterializer(path, storages).Materialize(dict);

        if (!top.TryGet("trainer", out var trainerValue) || trainerValue is not PyDict trainer)
            throw new CheckpointFormatException(path, "it has no ckpt['trainer'] dict, so it is not a training checkpoint in the reference layout");
        var model = Tensors(PthReader.FollowPath(path, top, ["trainer", "unitok"]));
        var owned = new List<IDisposable>();
        try
        {
            Dictionary<string, Tensor>? discriminator = null;
            if (trainer.TryGet("disc", out var disc) && disc is PyDict discDict)
            {
                discriminator = Tensors(discDict);
                owned.AddRange(discriminator.Values);
            }
            var modelOptimizer = Optimizer(path, trainer, "unitok_optim", Tensors);
            if (modelOptimizer is not null) owned.Add(modelOptimizer);
            var discriminatorOptimizer = Optimizer(path, trainer, "disc_optim", Tensors);
            if (discriminatorOptimizer is not null) owned.Add(discriminatorOptimizer);
            var extra = new Dictionary<string, object?>();
            foreach (var (key, value) in top.Items)
            {
                if (key is "args" or "epoch" or "iter" or "trainer") continue;
                extra[PythonValueConverter.KeyText(key)] = Value(path, value, Tensors);
            }
            return new TrainingCheckpoint(PthReader.SelectArgs(top), model)
            {
                Epoch = Integer(path, top, "epoch"),
                Iteration = Integer(path, top, "iter"),
                TrainerConfig = trainer.TryGet("config", out var config) && config is PyDict configDict
                    ? PythonValueConverter.ToDictionary(configDict)
                    : new Dictionary<string, object?>(),
                Discriminator = discriminator,
                ModelOptimizer = modelOptimizer,
                DiscriminatorOptimizer = discriminatorOptimizer,
                Extra = extra,
            };
        }
        catch
        {
            foreach (var tensor in model.Values) tensor.Dispose();
            foreach (var item in owned) item.Dispose();
            throw;
        }
    }

    private static long Integer(string path, PyDict top, string key) => top.TryGet(key, out var value) && value is long number
        ? number
        : throw new CheckpointFormatException(path, $"ckpt['{key}'] is a {PickleReader.Describe(value)}, expected an int");

    /// <summary><c>trainer[key]['optimizer']</c> as an <see cref="AdamWState"/>, or null when the checkpoint has none.</summary>
    private static AdamWState? Optimizer(string path, PyDict trainer, string key, Func<PyDict, Dictionary<string, Tensor>> tensors)
    {
        if (!trainer.TryGet(key, out var wrapper) || wrapper is not PyDict wrapperDict) return null;
        var where = $"ckpt['trainer']['{key}']['optimizer']";
        if (!wrapperDict.TryGet("optimizer", out var optimizer) || optimizer is not PyDict state)
            throw new CheckpointFormatException(path, $"{where} is missing or not a dict");
        if (!state.TryGet("state", out var moments) || moments is not PyDict momentsDict
            || !state.TryGet("param_groups", out var groups) || groups is not List<object?> groupList)
            throw new CheckpointFormatException(path, $"{where} lacks 'state' or 'param_groups': not a torch optimizer state_dict");

        var parameters = new Dictionary<int, AdamWParamState>();
        try
        {
            foreach (var (index, value) in momentsDict.Items)
            {
                if (index is not long id || value is not PyDict entry)
                    throw new CheckpointFormatException(path, $"{where}['state'] has entry {PythonValueConverter.KeyText(index)} that is not int -> dict");
                var loaded = tensors(entry);
                Tensor Get(string name) => loaded.TryGetValue(name, out var tensor) ? tensor
                    : throw new CheckpointFormatException(path, $"{where}['state'][{id}] has no '{name}' (keys: {string.Join(", ", loaded.Keys)})");
                parameters[(int)id] = new AdamWParamState(Get("step"), Get("exp_avg"), Get("exp_avg_sq"), loaded.GetValueOrDefault("max_exp_avg_sq"));
            }
            return new AdamWState(parameters, groupList.Select((group, i) => Group(path, $"{where}['param_groups'][{i}]", group)).ToList());
        }
        catch
        {
            new AdamWState(parameters, []).Dispose();
            throw;
        }
    }

    private static AdamWParamGroup Group(string path, string where, object? value)
    {
        if (value is not PyDict dict) throw new CheckpointFormatException(path, $"{where} is a {PickleReader.Describe(value)}, not a dict");
        var items = PythonValueConverter.ToDictionary(dict);
        double Real(string key) => items.TryGetValue(key, out var v) && v is double or long ? Convert.ToDouble(v, System.Globalization.CultureInfo.InvariantCulture)
            : throw new CheckpointFormatException(path, $"{where}['{key}'] is missing or not a number");
        bool Flag(string key, bool fallback) => items.TryGetValue(key, out var v) && v is bool b ? b : fallback;
        bool? Optional(string key) => items.TryGetValue(key, out var v) && v is bool b ? b : null;
        if (!items.TryGetValue("params", out var parameters) || parameters is not IReadOnlyList<object?> indices || indices.Any(i => i is not long))
            throw new CheckpointFormatException(path, $"{where}['params'] is missing or not a list of ints");
        if (!items.TryGetValue("betas", out var betas) || betas is not IReadOnlyList<object?> { Count: 2 } pair)
            throw new CheckpointFormatException(path, $"{where}['betas'] is missing or not a pair");
        string[] own = ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused", "decoupled_weight_decay", "params"];
        return new AdamWParamGroup(indices.Select(i => (int)(long)i!).ToList())
        {
            Lr = Real("lr"),
            Beta1 = Convert.ToDouble(pair[0], System.Globalization.CultureInfo.InvariantCulture),
            Beta2 = Convert.ToDouble(pair[1], System.Globalization.CultureInfo.InvariantCulture),
            Eps = Real("eps"),
            WeightDecay = Real("weight_decay"),
            Amsgrad = Flag("amsgrad", false),
            Maximize = Flag("maximize", false),
            Foreach = Optional("foreach"),
            Capturable = Flag("capturable", false),
            Differentiable = Flag("differentiable", false),
            Fused = Optional("fused"),
            DecoupledWeightDecay = Flag("decoupled_weight_decay", true),
            Extra = items.Where(pair => !own.Contains(pair.Key)).ToDictionary(pair => pair.Key, pair => pair.Value),
        };
    }

    /// <summary>
    /// An extra entry: a tensor, a dict whose values are all tensors (a state_dict, possibly empty), another dict, a list,
    /// or a plain value as <see cref="PythonValueConverter"/> gives it.
    /// </summary>
    private static object? Value(string path, object? value, Func<PyDict, Dictionary<string, Tensor>> tensors)
    {
        switch (value)
        {
            case TensorReference tensor:
            {
                var single = new PyDict();
                single.Set("tensor", tensor);
                return tensors(single)["tensor"];
            }
            case PyDict dict when dict.Count > 0 && dict.Items.All(pair => pair.Value is TensorReference):
                return tensors(dict);
            case PyDict dict:
                return dict.Items.ToDictionary(pair => PythonValueConverter.KeyText(pair.Key), pair => Value(path, pair.Value, tensors));
            case List<object?> list:
                return list.Select(item => Value(path, item, tensors)).ToList();
            case PyTuple tuple:
                return tuple.Items.Select(item => Value(path, item, tensors)).ToList();
            case null or bool or long or double or string or byte[]:
                return value;
            default:
                var wrapper = new PyDict();
                wrapper.Set("value", value);
                return PythonValueConverter.ToDictionary(wrapper)["value"];
        }
    }
}
