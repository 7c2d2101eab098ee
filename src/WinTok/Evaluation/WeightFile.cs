using WinTok.Checkpoints;
using static TorchSharp.torch;

namespace WinTok.Evaluation;

// Strict loading of the metric networks' weight files (LPIPS backbones and heads, the FID Inception). These files come
// from other projects (torchvision, the lpips package, pytorch-fid, WinTok's training LPIPS), each with its own key
// names; a layout translates our module's state_dict keys into the file's, so every error names the file's tensors.

/// <summary>
/// How one weight file maps onto (part of) a module: which module keys it supplies, under which names, and which of
/// its own tensors the network does not use (a torchvision file's <c>classifier.*</c>, the FID file's <c>fc.*</c>).
/// </summary>
/// <param name="Network">What the file is for, in words, for error messages ("the LPIPS AlexNet backbone").</param>
/// <param name="FileKeyOf">The file's name for a module key, or null when this file does not supply that key.</param>
/// <param name="IsUnused">True for a file key that real files carry and the network ignores; it is not an error.</param>
internal sealed record WeightFileLayout(string Network, Func<string, string?> FileKeyOf, Func<string, bool> IsUnused);

/// <summary>
/// A weight file that does not fit the network it was given for: names the file and every missing, unexpected and
/// misshaped tensor (by the file's own names, with expected and actual shapes).
/// </summary>
public sealed class WeightFileMismatchException : Exception
{
    internal WeightFileMismatchException(string path, string network, CheckpointMismatchException mismatch)
        : base($"Weight file '{path}' is not {network}: {mismatch.Message}", mismatch)
    {
        FilePath = path;
        Missing = mismatch.Missing;
        Unexpected = mismatch.Unexpected;
        Misshaped = mismatch.Misshaped;
    }

    /// <summary>The file (or, for in-memory weights, the name of their source).</summary>
    public string FilePath { get; }

    /// <summary>Tensors the network needs and the file lacks, by the file's names.</summary>
    public IReadOnlyList<string> Missing { get; }

    /// <summary>Tensors in the file that the network does not know.</summary>
    public IReadOnlyList<string> Unexpected { get; }

    /// <summary>Tensors of the wrong shape: expected (the network's) and actual (the file's).</summary>
    public IReadOnlyList<MisshapedTensor> Misshaped { get; }
}

/// <summary>Reads a weight file (torch.save or safetensors) and copies it into a module after checking every name and shape.</summary>
internal static class WeightFile
{
    /// <summary>Reads <paramref name="path"/> and loads it through <see cref="Load(nn.Module, IReadOnlyDictionary{string, Tensor}, string, WeightFileLayout)"/>.</summary>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="CheckpointFormatException">The file is not a readable weight file.</exception>
    /// <exception cref="WeightFileMismatchException">Its tensors do not fit the layout.</exception>
    public static void Load(nn.Module module, string path, WeightFileLayout layout)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Weight file for {layout.Network} not found: '{path}'", path);
        }
        using var checkpoint = CheckpointFile.Read(path);
        Load(module, checkpoint.StateDict, path, layout);
    }

    /// <summary>
    /// Checks <paramref name="tensors"/> against the module keys the layout maps to this file, then copies them (dtype
    /// and device converted by <c>copy_</c>). Nothing is copied unless every key and shape fits.
    /// </summary>
    /// <param name="source">The file name (or a description of in-memory weights) for error messages.</param>
    public static void Load(nn.Module module, IReadOnlyDictionary<string, Tensor> tensors, string source, WeightFileLayout layout)
    {
        // state_dict() returns the module's own parameters and buffers: never dispose them here.
        var targets = module.state_dict()
            .Select(pair => (ModuleKey: pair.Key, FileKey: layout.FileKeyOf(pair.Key), Tensor: pair.Value))
            .Where(target => target.FileKey is not null)
            .ToList();
        var expected = targets.Select(target => target.FileKey!).ToHashSet(StringComparer.Ordinal);

        var missing = targets.Where(target => !tensors.ContainsKey(target.FileKey!)).Select(target => target.FileKey!).ToList();
        var unexpected = tensors.Keys.Where(key => !expected.Contains(key) && !layout.IsUnused(key)).Order(StringComparer.Ordinal).ToList();
        var misshaped = targets
            .Where(target => tensors.TryGetValue(target.FileKey!, out var tensor) && !tensor.shape.SequenceEqual(target.Tensor.shape))
            .Select(target => new MisshapedTensor(target.FileKey!, target.Tensor.shape, tensors[target.FileKey!].shape))
            .ToList();
        if (missing.Count > 0 || unexpected.Count > 0 || misshaped.Count > 0)
        {
            throw new WeightFileMismatchException(source, layout.Network, new CheckpointMismatchException(missing, unexpected, misshaped));
        }

        using var noGrad = no_grad();
        foreach (var target in targets)
        {
            target.Tensor.copy_(tensors[target.FileKey!]);
        }
    }
}
