using Microsoft.Win32.SafeHandles;
using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Checkpoints;

/// <summary>
/// Moves raw tensor bytes between files and CPU tensors without intermediate managed buffers: reads land directly
/// in the tensor's memory (torchsharp.md §6: stream copies with small buffers are 20x slower on large weights).
/// </summary>
internal static class TensorBytes
{
    // Tensor.bytes is a Span, so one span covers at most int.MaxValue bytes; larger tensors go in slices.
    internal const long DefaultChunkBytes = 1L << 30;

    public static long ElementSize(ScalarType type) => type switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        _ => throw new NotSupportedException($"Tensors of type {type} are not supported in checkpoints"),
    };

    /// <summary>Reads exactly the tensor's size from <paramref name="stream"/> into the tensor.</summary>
    public static void Fill(Tensor tensor, Stream stream, long chunkBytes = DefaultChunkBytes) =>
        ForEachChunk(tensor, chunkBytes, (span, _) => stream.ReadExactly(span));

    /// <summary>Reads the tensor's bytes from <paramref name="file"/> starting at <paramref name="fileOffset"/>.</summary>
    public static void Fill(Tensor tensor, SafeFileHandle file, long fileOffset, long chunkBytes = DefaultChunkBytes) =>
        ForEachChunk(tensor, chunkBytes, (span, byteOffset) => ReadExactly(file, span, fileOffset + byteOffset));

    /// <summary>Fills <paramref name="buffer"/> from <paramref name="file"/> at <paramref name="offset"/>; a short file is an error.</summary>
    public static void ReadExactly(SafeFileHandle file, Span<byte> buffer, long offset)
    {
        while (!buffer.IsEmpty)
        {
            int read = RandomAccess.Read(file, buffer, offset);
            if (read == 0)
            {
                throw new EndOfStreamException($"The file ends at byte {offset}");
            }
            buffer = buffer[read..];
            offset += read;
        }
    }

    /// <summary>Writes a contiguous CPU tensor's bytes to <paramref name="stream"/>.</summary>
    public static void Write(Tensor tensor, Stream stream, long chunkBytes = DefaultChunkBytes) =>
        ForEachChunk(tensor, chunkBytes, (span, _) => stream.Write(span));

    private delegate void ChunkAction(Span<byte> chunk, long byteOffset);

    private static void ForEachChunk(Tensor tensor, long chunkBytes, ChunkAction action)
    {
        if (!tensor.is_contiguous() || tensor.device_type != DeviceType.CPU)
        {
            throw new ArgumentException("Raw byte access needs a contiguous CPU tensor", nameof(tensor));
        }
        long elementSize = tensor.element_size();
        long total = tensor.numel() * elementSize;
        if (total == 0)
        {
            return;
        }
        if (total <= chunkBytes && total <= int.MaxValue)
        {
            action(tensor.bytes, 0);
            return;
        }
        long chunkElements = Math.Max(1, Math.Min(chunkBytes, int.MaxValue) / elementSize);
        using var flat = tensor.view(-1);
        for (long start = 0; start < flat.numel(); start += chunkElements)
        {
            using var part = flat.narrow(0, start, Math.Min(chunkElements, flat.numel() - start));
            action(part.bytes, start * elementSize);
        }
    }
}
