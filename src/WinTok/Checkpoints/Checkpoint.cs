using static TorchSharp.torch;

namespace WinTok.Checkpoints;

/// <summary>The container a checkpoint was read from.</summary>
public enum CheckpointFileFormat
{
    /// <summary>A <c>torch.save</c> zip with a pickle (<c>.pth</c>).</summary>
    PyTorch,

    /// <summary>A safetensors file.</summary>
    Safetensors,
}

/// <summary>
/// A checkpoint in memory: the reference's hyperparameters (<c>ckpt['args']</c>) and the model's state_dict
/// (<c>ckpt['trainer']['unitok']</c>), as CPU tensors in the file's dtypes. Owns its tensors: dispose it once they
/// have been copied into a module.
/// </summary>
/// <remarks>
/// Args values are mapped from Python: int → long (BigInteger beyond 64 bits), float → double, str → string,
/// bool, None → null, torch dtype → a string such as "torch.bfloat16", list/tuple → IReadOnlyList&lt;object?&gt;,
/// dict → IReadOnlyDictionary&lt;string, object?&gt;, bytes → byte[], other objects → <see cref="PythonObject"/>.
/// </remarks>
public sealed class Checkpoint : IDisposable
{
    private readonly Dictionary<string, Tensor> stateDict;

    internal Checkpoint(
        string path,
        CheckpointFileFormat format,
        IReadOnlyDictionary<string, object?> args,
        Dictionary<string, Tensor> stateDict,
        IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        Format = format;
        Args = args;
        this.stateDict = stateDict;
        Metadata = metadata;
    }

    /// <summary>The file this checkpoint was read from.</summary>
    public string Path { get; }

    /// <summary>The container format of <see cref="Path"/>.</summary>
    public CheckpointFileFormat Format { get; }

    /// <summary>The reference's hyperparameters, in file order; empty if the file has none.</summary>
    public IReadOnlyDictionary<string, object?> Args { get; }

    /// <summary>The model weights by state_dict key; contiguous CPU tensors, not attached to any dispose scope.</summary>
    public IReadOnlyDictionary<string, Tensor> StateDict => stateDict;

    /// <summary>The safetensors <c>__metadata__</c> map (empty for .pth files).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Strictly copies <see cref="StateDict"/> into <paramref name="module"/>; see <see cref="StateDictLoader.Load"/>.</summary>
    public StateDictLoadResult LoadInto(nn.Module module, bool strict = true) => StateDictLoader.Load(module, StateDict, strict);

    public void Dispose()
    {
        foreach (var tensor in stateDict.Values)
        {
            tensor.Dispose();
        }
        stateDict.Clear();
    }
}
