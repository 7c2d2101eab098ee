using static TorchSharp.torch;

namespace WinTok.Checkpoints;

/// <summary>What a state_dict load found: keys only in the module, only in the checkpoint, or shaped differently.</summary>
public sealed record StateDictLoadResult(
    IReadOnlyList<string> Missing,
    IReadOnlyList<string> Unexpected,
    IReadOnlyList<MisshapedTensor> Misshaped)
{
    /// <summary>True when every key matched in name and shape.</summary>
    public bool IsExactMatch => Missing.Count == 0 && Unexpected.Count == 0 && Misshaped.Count == 0;
}

/// <summary>
/// Copies a state_dict into any TorchSharp module, checking names and shapes first. TorchSharp's own strict
/// <c>load_state_dict</c> throws without naming the offending keys (torchsharp.md §6); this one names them all.
/// </summary>
public static class StateDictLoader
{
    /// <summary>
    /// Compares <paramref name="source"/> with <c>module.state_dict()</c> (parameters and persistent buffers). In strict
    /// mode any missing, unexpected or misshaped key throws before anything is copied. Otherwise every key present in
    /// both with equal shapes is copied under <c>no_grad</c> with <c>copy_</c>, which converts dtype and device, so
    /// the module's parameters stay the same objects (optimizers built on them remain valid).
    /// </summary>
    /// <exception cref="CheckpointMismatchException">Strict mode and the keys or shapes differ; lists them all.</exception>
    public static StateDictLoadResult Load(nn.Module module, IReadOnlyDictionary<string, Tensor> source, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(source);
        // state_dict() returns the module's own parameter and buffer objects: never dispose them here.
        var target = module.state_dict();
        var missing = target.Keys.Where(key => !source.ContainsKey(key)).ToList();
        var unexpected = source.Keys.Where(key => !target.ContainsKey(key)).ToList();
        var misshaped = target
            .Where(pair => source.TryGetValue(pair.Key, out var tensor) && !pair.Value.shape.SequenceEqual(tensor.shape))
            .Select(pair => new MisshapedTensor(pair.Key, pair.Value.shape, source[pair.Key].shape))
            .ToList();
        var result = new StateDictLoadResult(missing, unexpected, misshaped);
        if (strict && !result.IsExactMatch)
        {
            throw new CheckpointMismatchException(missing, unexpected, misshaped);
        }

        var skip = misshaped.Select(m => m.Name).ToHashSet();
        using var noGrad = no_grad();
        foreach (var (key, destination) in target)
        {
            if (source.TryGetValue(key, out var tensor) && !skip.Contains(key))
            {
                destination.copy_(tensor);
            }
        }
        return result;
    }
}
