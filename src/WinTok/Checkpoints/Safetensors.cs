using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Checkpoints;

/// <summary>
/// Reads and writes the safetensors format (https://github.com/huggingface/safetensors, "Format" in its README):
/// an 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping each tensor name to
/// <c>{"dtype", "shape", "data_offsets": [begin, end]}</c> (offsets relative to the byte buffer after the header)
/// plus an optional <c>"__metadata__"</c> string-to-string map, then the little-endian row-major byte buffer.
/// </summary>
internal static class Safetensors
{
    public const string MetadataKey = "__metadata__";

    // The reference implementation refuses headers above 100 MB; a larger length means a corrupt or foreign file.
    private const long MaxHeaderBytes = 100_000_000;

    private static readonly Dictionary<string, ScalarType> DTypes = new()
    {
        ["F64"] = ScalarType.Float64,
        ["F32"] = ScalarType.Float32,
        ["F16"] = ScalarType.Float16,
        ["BF16"] = ScalarType.BFloat16,
        ["I64"] = ScalarType.Int64,
        ["I32"] = ScalarType.Int32,
        ["I16"] = ScalarType.Int16,
        ["I8"] = ScalarType.Int8,
        ["U8"] = ScalarType.Byte,
        ["BOOL"] = ScalarType.Bool,
    };

    private static readonly Dictionary<ScalarType, string> DTypeNames = DTypes.ToDictionary(pair => pair.Value, pair => pair.Key);

    private sealed record Entry(string Name, ScalarType Type, long[] Shape, long Begin, long End);

    /// <param name="path">The file.</param>
    /// <param name="include">
    /// Which tensors to read, by name; all when null. The others are never read, so taking the text tower out of a full
    /// SigLIP2 checkpoint does not load its vision tower.
    /// </param>
    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) Read(string path, Func<string, bool>? include = null)
    {
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var (header, dataStart, length) = ReadHeaderBytes(path, file);
        var (entries, metadata) = ParseHeader(path, header, length - dataStart);

        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>();
        foreach (var entry in entries.Where(e => include is null || include(e.Name)))
        {
            var tensor = torch.empty(entry.Shape, entry.Type);
            try
            {
                TensorBytes.Fill(tensor, file, dataStart + entry.Begin);
            }
            catch (IOException e)
            {
                // The header was checked against the file length, so this is a file that changed or a failing disk.
                throw new CheckpointFormatException(path, $"reading tensor '{entry.Name}' failed: {e.Message}", e);
            }
            tensors[entry.Name] = tensor;
        }
        foreach (var tensor in tensors.Values)
        {
            tensor.DetachFromDisposeScope();
        }
        return (tensors, metadata);
    }

    /// <summary>
    /// Reads the <c>__metadata__</c> map from the header alone: no tensor is read or checked, so a file whose data is
    /// truncated still yields its metadata.
    /// </summary>
    public static Dictionary<string, string> ReadMetadata(string path)
    {
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var (header, _, _) = ReadHeaderBytes(path, file);
        using var document = ParseJson(path, header);
        var metadata = new Dictionary<string, string>();
        if (document.RootElement.TryGetProperty(MetadataKey, out var element))
        {
            ReadMetadata(path, element, metadata);
        }
        return metadata;
    }

    private static (byte[] Header, long DataStart, long FileLength) ReadHeaderBytes(string path, SafeFileHandle file)
    {
        long length = RandomAccess.GetLength(file);
        if (length < 8)
        {
            throw new CheckpointFormatException(path, $"the file has {length} bytes, too short for a safetensors header length (8 bytes)");
        }
        Span<byte> lengthBytes = stackalloc byte[8];
        TensorBytes.ReadExactly(file, lengthBytes, 0);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > MaxHeaderBytes || (long)headerLength > length - 8)
        {
            throw new CheckpointFormatException(path,
                $"the safetensors header claims {headerLength} bytes but the file has only {length - 8} after the length field (truncated, or not a safetensors file)");
        }
        var header = new byte[headerLength];
        TensorBytes.ReadExactly(file, header, 8);
        return (header, 8 + (long)headerLength, length);
    }

    private static JsonDocument ParseJson(string path, byte[] header)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(path, $"the safetensors header is not valid JSON (not a safetensors file?): {e.Message}", e);
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            document.Dispose();
            throw new CheckpointFormatException(path, "the safetensors header is not a JSON object");
        }
        return document;
    }

    private static (List<Entry> Entries, Dictionary<string, string> Metadata) ParseHeader(string path, byte[] header, long dataBytes)
    {
        using (var document = ParseJson(path, header))
        {
            var entries = new List<Entry>();
            var metadata = new Dictionary<string, string>();
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    ReadMetadata(path, property.Value, metadata);
                    continue;
                }
                entries.Add(ParseEntry(path, property.Name, property.Value, dataBytes));
            }
            return (entries, metadata);
        }
    }

    private static void ReadMetadata(string path, JsonElement element, Dictionary<string, string> metadata)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointFormatException(path, "the safetensors __metadata__ is not a JSON object");
        }
        foreach (var item in element.EnumerateObject())
        {
            metadata[item.Name] = item.Value.ValueKind == JsonValueKind.String
                ? item.Value.GetString()!
                : throw new CheckpointFormatException(path, $"safetensors metadata '{item.Name}' is not a string");
        }
    }

    private static Entry ParseEntry(string path, string name, JsonElement element, long dataBytes)
    {
        CheckpointFormatException Bad(string problem) => new(path, $"safetensors entry '{name}' {problem}");

        if (element.ValueKind != JsonValueKind.Object
            || !element.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String
            || !element.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array
            || !element.TryGetProperty("data_offsets", out var offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array)
        {
            throw Bad("lacks a string dtype, a shape array or a data_offsets array");
        }
        string dtype = dtypeElement.GetString()!;
        if (!DTypes.TryGetValue(dtype, out var type))
        {
            throw Bad($"has dtype {dtype}; supported are {string.Join(", ", DTypes.Keys)}");
        }
        long[] shape = ReadLongs(shapeElement) ?? throw Bad("has a shape that is not a list of non-negative integers");
        if (ReadLongs(offsetsElement) is not [long begin, long end] || end < begin)
        {
            throw Bad("has data_offsets that are not [begin, end] with begin <= end");
        }
        long expected;
        try
        {
            expected = checked(shape.Aggregate(1L, (product, size) => product * size) * TensorBytes.ElementSize(type));
        }
        catch (OverflowException)
        {
            throw Bad($"has an impossibly large shape [{string.Join(", ", shape)}]");
        }
        if (end - begin != expected)
        {
            throw Bad($"has {end - begin} bytes of data, but shape [{string.Join(", ", shape)}] of {dtype} needs {expected}");
        }
        if (end > dataBytes)
        {
            throw Bad($"ends at data byte {end}, but the file holds only {dataBytes} data bytes (truncated?)");
        }
        return new Entry(name, type, shape, begin, end);
    }

    private static long[]? ReadLongs(JsonElement array)
    {
        var values = new List<long>();
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long value) || value < 0)
            {
                return null;
            }
            values.Add(value);
        }
        return [.. values];
    }

    /// <summary>
    /// Writes tensors (any device, any layout) and string metadata. Data is laid out as the reference writer does:
    /// by element size, largest first, then by name, so every tensor starts aligned to its element size; the header
    /// is space-padded to a multiple of 8 bytes. The file is written beside the target and renamed over it.
    /// </summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        if (tensors.ContainsKey(MetadataKey))
        {
            throw new ArgumentException($"A tensor cannot be named {MetadataKey}", nameof(tensors));
        }
        var order = tensors
            .Select(pair => (pair.Key, Tensor: pair.Value, Type: DTypeNames.TryGetValue(pair.Value.dtype, out string? name)
                ? name
                : throw new ArgumentException($"Tensor '{pair.Key}' has type {pair.Value.dtype}, which safetensors writing does not support", nameof(tensors))))
            .OrderByDescending(item => TensorBytes.ElementSize(item.Tensor.dtype))
            .ThenBy(item => item.Key, StringComparer.Ordinal)
            .ToList();

        byte[] header = BuildHeader(order.Select(item => (item.Key, item.Type, item.Tensor.shape, item.Tensor.numel() * item.Tensor.element_size())), metadata);
        // Written beside the target and renamed, so a crash never leaves a half-written checkpoint under its name.
        string temporary = path + ".tmp";
        try
        {
            using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1 << 20))
            {
                Span<byte> lengthBytes = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(lengthBytes, (ulong)header.Length);
                stream.Write(lengthBytes);
                stream.Write(header);
                foreach (var item in order)
                {
                    using var scope = torch.NewDisposeScope();
                    var cpu = item.Tensor.detach().cpu().contiguous();
                    TensorBytes.Write(cpu, stream);
                }
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    private static byte[] BuildHeader(IEnumerable<(string Name, string Type, long[] Shape, long Bytes)> entries, IReadOnlyDictionary<string, string> metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata.Count > 0)
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata.OrderBy(pair => pair.Key, StringComparer.Ordinal))
                {
                    json.WriteString(key, value);
                }
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, type, shape, bytes) in entries)
            {
                json.WriteStartObject(name);
                json.WriteString("dtype", type);
                json.WriteStartArray("shape");
                foreach (long size in shape)
                {
                    json.WriteNumberValue(size);
                }
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        int padding = (int)((8 - buffer.Length % 8) % 8);
        buffer.Write(Encoding.ASCII.GetBytes(new string(' ', padding)));
        return buffer.ToArray();
    }
}
