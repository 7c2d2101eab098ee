using WinTok.Checkpoints.Pickle;
using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Checkpoints;

/// <summary>
/// Turns the tensor references of an unpickled state_dict into tensors, reading each storage at most once from a
/// container-specific source (a zip entry, or a byte range of a legacy file). Shared by both torch.save formats.
/// </summary>
internal sealed class TensorMaterializer(string path, TensorMaterializer.StorageSource readStorage)
{
    /// <summary>Reads a whole storage as a flat tensor of <paramref name="type"/>; <paramref name="name"/> is the first tensor needing it, for errors.</summary>
    public delegate Tensor StorageSource(string name, StorageReference reference, ScalarType type);

    private readonly Dictionary<(string Key, ScalarType Type), Tensor> storages = [];

    public Dictionary<string, Tensor> Materialize(PyDict stateDict)
    {
        using var scope = torch.NewDisposeScope();
        var result = new Dictionary<string, Tensor>();
        foreach (var (key, value) in stateDict.Items)
        {
            if (key is not string name)
            {
                throw new CheckpointFormatException(path, $"the state_dict has a {PickleReader.Describe(key)} key; keys must be strings");
            }
            var reference = value switch
            {
                TensorReference tensor => tensor,
                PyInstance instance => throw new CheckpointFormatException(path,
                    $"state_dict entry '{name}' was pickled through {instance.TypeName}, which this reader does not support"),
                _ => throw new CheckpointFormatException(path,
                    $"state_dict entry '{name}' is a {PickleReader.Describe(value)}, not a tensor"),
            };
            result[name] = Build(name, reference);
        }
        // Only the returned tensors survive the scope; the shared storage tensors are released with it.
        foreach (var tensor in result.Values)
        {
            tensor.DetachFromDisposeScope();
        }
        return result;
    }

    private Tensor Build(string name, TensorReference reference)
    {
        var storage = Storage(name, reference.Storage);
        CheckBounds(name, reference, storage.numel());
        var view = storage.as_strided(reference.Size, reference.Stride, reference.StorageOffset);
        // A view covering its whole storage is the tensor itself; anything smaller is copied, so that the
        // state_dict never pins a larger storage nor aliases another entry.
        bool whole = reference.StorageOffset == 0 && view.numel() == storage.numel();
        return view.is_contiguous() ? (whole ? view : view.clone()) : view.contiguous();
    }

    private Tensor Storage(string name, StorageReference reference)
    {
        if (reference.Type.ScalarType is not { } type)
        {
            throw new CheckpointFormatException(path, $"tensor '{name}' uses storage type {reference.Type.Name}, which this reader does not support");
        }
        if (storages.TryGetValue((reference.Key, type), out var cached))
        {
            return cached;
        }
        var tensor = readStorage(name, reference, type);
        storages[(reference.Key, type)] = tensor;
        return tensor;
    }

    private void CheckBounds(string name, TensorReference reference, long storageElements)
    {
        bool valid = reference.StorageOffset >= 0 && reference.Size.All(s => s >= 0) && reference.Stride.All(s => s >= 0);
        if (valid && reference.Size.All(s => s > 0))
        {
            // The last element the view touches must lie inside the storage (checked: corrupt sizes overflow).
            try
            {
                long last = checked(reference.StorageOffset + reference.Size.Zip(reference.Stride, (size, stride) => checked((size - 1) * stride)).Sum());
                valid = last < storageElements;
            }
            catch (OverflowException)
            {
                valid = false;
            }
        }
        if (!valid)
        {
            throw new CheckpointFormatException(path,
                $"tensor '{name}' (offset {reference.StorageOffset}, size {reference.ShapeText}, stride [{string.Join(", ", reference.Stride)}]) " +
                $"does not fit its storage '{reference.Storage.Key}' of {storageElements} elements");
        }
    }
}
