using System.Buffers.Binary;
using System.Text.Json;

namespace WinTok.Data.Tests.Images;

/// <summary>
/// Just enough of the safetensors format to read the preprocessing fixtures: an 8-byte little-endian header length,
/// a JSON header of <c>name: {dtype, shape, data_offsets}</c>, then the raw tensor bytes.
/// </summary>
internal sealed class SafetensorsFile
{
    private readonly byte[] bytes;
    private readonly long dataStart;
    private readonly Dictionary<string, (string DType, long[] Shape, long Begin, long End)> tensors = [];

    private SafetensorsFile(byte[] bytes)
    {
        this.bytes = bytes;
        var headerLength = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        dataStart = 8 + headerLength;
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
        foreach (var entry in header.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__")
            {
                continue;
            }
            var offsets = entry.Value.GetProperty("data_offsets");
            tensors[entry.Name] = (
                entry.Value.GetProperty("dtype").GetString()!,
                [.. entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64())],
                offsets[0].GetInt64(),
                offsets[1].GetInt64());
        }
    }

    public static SafetensorsFile Read(string path) => new(File.ReadAllBytes(path));

    public IEnumerable<string> Names => tensors.Keys;

    /// <summary>The bytes of a uint8 tensor, checked against the expected shape.</summary>
    public ReadOnlySpan<byte> GetUInt8(string name, params long[] shape)
    {
        if (!tensors.TryGetValue(name, out var tensor))
        {
            throw new KeyNotFoundException($"Tensor {name} is not in the file; it has {string.Join(", ", tensors.Keys)}");
        }
        if (tensor.DType != "U8" || !tensor.Shape.SequenceEqual(shape))
        {
            throw new InvalidDataException($"Tensor {name} is {tensor.DType} [{string.Join(", ", tensor.Shape)}], expected U8 [{string.Join(", ", shape)}]");
        }
        return bytes.AsSpan((int)(dataStart + tensor.Begin), (int)(tensor.End - tensor.Begin));
    }
}
