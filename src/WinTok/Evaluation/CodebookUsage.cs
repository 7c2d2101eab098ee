using System.Buffers.Binary;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Evaluation;

// Codebook usage as WinTok's evaluation reports it with --vocab_stats (examples/eval_tokenizer/eval_metrics_ddp.py
// @ eb0452e: count_vocab_from_indices, print_vocab_stats): token ids (B, K, L) from img_to_idx become global ids
// i * codebook_size + idx, counted over K * codebook_size bins and summed over ranks; the summary gives the used share,
// the entropy in nats -Σ p ln p over nonzero p, the perplexity exp(entropy) and the top-k ids. The reference computes
// p in float32; here it is float64. torch.topk does not define the order of equal counts; here they go by id.

/// <summary>The shape of a multi-codebook quantizer's ids: K codebooks of <paramref name="CodebookSize"/> codes.</summary>
public sealed record CodebookShape(int NumCodebooks, int CodebookSize)
{
    /// <summary>K × codebook size: the number of global ids.</summary>
    public int VocabularySize => checked(NumCodebooks * CodebookSize);

    public override string ToString() => $"{NumCodebooks} codebooks of {CodebookSize}";
}

/// <summary>How often one global id was chosen.</summary>
/// <param name="Id">The global id i·codebook_size + idx.</param>
/// <param name="Count">How many tokens had it.</param>
/// <param name="Percent">100·count / total tokens (of the summarised range).</param>
public readonly record struct TokenCount(int Id, long Count, double Percent);

/// <summary>The reference's vocabulary statistics over a range of ids (all global ids, or one codebook's).</summary>
/// <param name="Total">Tokens counted.</param>
/// <param name="VocabularySize">Ids in the range.</param>
/// <param name="Used">Ids counted at least once.</param>
/// <param name="UsedPercent">100·used / vocabulary size.</param>
/// <param name="EntropyNats">−Σ p ln p over the nonzero p = count / total (0 when nothing was counted).</param>
/// <param name="Perplexity">exp(entropy).</param>
/// <param name="Top">The most frequent ids, by count descending then id ascending.</param>
public sealed record UsageSummary(long Total, int VocabularySize, int Used, double UsedPercent, double EntropyNats, double Perplexity, IReadOnlyList<TokenCount> Top);

/// <summary>
/// Token counts per global id (int64), mergeable across partitions (exactly: integer sums) and serialisable.
/// </summary>
public sealed class CodebookUsage
{
    private const uint Magic = 0x53554257; // "WBUS" little-endian
    private const int FormatVersion = 1;

    private readonly long[] counts;

    /// <summary>Zero counts for <paramref name="shape"/>.</summary>
    public CodebookUsage(CodebookShape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(shape.NumCodebooks);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(shape.CodebookSize);
        Shape = shape;
        counts = new long[shape.VocabularySize];
    }

    /// <summary>Counts given per global id (e.g. the reference's <c>vocab_counts</c>).</summary>
    public CodebookUsage(CodebookShape shape, IReadOnlyList<long> counts) : this(shape)
    {
        ArgumentNullException.ThrowIfNull(counts);
        if (counts.Count != shape.VocabularySize || counts.Any(count => count < 0))
        {
            throw new ArgumentException($"Expected {shape.VocabularySize} non-negative counts for {shape}, got {counts.Count}", nameof(counts));
        }
        for (int i = 0; i < counts.Count; i++)
        {
            this.counts[i] = counts[i];
        }
    }

    public CodebookShape Shape { get; }

    /// <summary>Count per global id i·codebook_size + idx.</summary>
    public IReadOnlyList<long> Counts => counts;

    /// <summary>All tokens counted.</summary>
    public long Total => counts.Sum();

    /// <summary>Adds another partition's counts (exact).</summary>
    public void Merge(CodebookUsage other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Shape != Shape)
        {
            throw new ArgumentException($"Cannot merge counts of {other.Shape} into {Shape}", nameof(other));
        }
        for (int i = 0; i < counts.Length; i++)
        {
            counts[i] += other.counts[i];
        }
    }

    /// <summary>The reference's summary over all global ids.</summary>
    public UsageSummary Summarize(int topK = 50) => Summarize(0, counts.Length, topK);

    /// <summary>The same statistics within codebook <paramref name="codebook"/> (p normalised over that codebook's tokens; ids stay global).</summary>
    public UsageSummary SummarizeCodebook(int codebook, int topK = 50)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(codebook);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(codebook, Shape.NumCodebooks);
        return Summarize(codebook * Shape.CodebookSize, Shape.CodebookSize, topK);
    }

    /// <summary>Writes the counts exactly: "WBUS", version, codebooks, codebook size, counts (little-endian int64).</summary>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> header = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], Shape.NumCodebooks);
        BinaryPrimitives.WriteInt32LittleEndian(header[12..], Shape.CodebookSize);
        stream.Write(header);
        var bytes = MemoryMarshal.AsBytes(counts.AsSpan()).ToArray();
        if (!BitConverter.IsLittleEndian)
        {
            for (int i = 0; i < counts.Length; i++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(i * 8), counts[i]);
            }
        }
        stream.Write(bytes);
    }

    /// <summary>Reads counts written by <see cref="WriteTo"/>.</summary>
    /// <exception cref="InvalidDataException">The stream does not hold codebook counts, or ends early.</exception>
    public static CodebookUsage ReadFrom(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> header = stackalloc byte[16];
        ReadExactly(stream, header);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic)
        {
            throw new InvalidDataException("Not WinTok codebook counts: the data does not start with 'WBUS'");
        }
        int version = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
        if (version != FormatVersion)
        {
            throw new InvalidDataException($"Codebook counts of format version {version}; this build reads version {FormatVersion}");
        }
        int codebooks = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        int size = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
        if (codebooks <= 0 || size <= 0 || (long)codebooks * size > Array.MaxLength)
        {
            throw new InvalidDataException($"Codebook counts with an impossible shape: {codebooks} codebooks of {size}");
        }
        var bytes = new byte[checked(codebooks * size * 8)];
        ReadExactly(stream, bytes);
        var values = new long[codebooks * size];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(i * 8));
        }
        return new CodebookUsage(new CodebookShape(codebooks, size), values);
    }

    private UsageSummary Summarize(int start, int length, int topK)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(topK);
        var range = new ReadOnlySpan<long>(counts, start, length);
        long total = 0;
        int used = 0;
        foreach (long count in range)
        {
            total += count;
            used += count > 0 ? 1 : 0;
        }
        double entropy = 0;
        if (total > 0)
        {
            foreach (long count in range)
            {
                if (count > 0)
                {
                    double p = (double)count / total;
                    entropy -= p * Math.Log(p);
                }
            }
        }
        var top = Enumerable.Range(start, length)
            .Where(id => counts[id] > 0)
            .OrderByDescending(id => counts[id]).ThenBy(id => id)
            .Take(topK)
            .Select(id => new TokenCount(id, counts[id], 100.0 * counts[id] / total))
            .ToList();
        return new UsageSummary(total, length, used, 100.0 * used / length, entropy, Math.Exp(entropy), top);
    }

    private static void ReadExactly(Stream stream, Span<byte> buffer)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("Codebook counts end early (truncated)", e);
        }
    }
}

/// <summary>Counts token ids on their device, batch by batch (one bincount each); <see cref="ToUsage"/> copies them to the host.</summary>
internal sealed class CodebookCounter : IDisposable
{
    private readonly Tensor counts; // (K * size) int64
    private readonly Tensor offsets; // (1, K, 1) int64: i * size

    public CodebookCounter(CodebookShape shape, Device device)
    {
        ArgumentNullException.ThrowIfNull(shape);
        Shape = shape;
        counts = zeros([shape.VocabularySize], int64, device).DetachFromDisposeScope();
        offsets = arange(0, (long)shape.VocabularySize, shape.CodebookSize, int64, device).view(1, -1, 1).DetachFromDisposeScope();
    }

    public CodebookShape Shape { get; }

    /// <summary>Adds ids (B, K, L) with per-codebook values in [0, codebook size), as <c>img_to_idx</c> returns them.</summary>
    /// <exception cref="ArgumentException">The shape is not (B, K, L) or an id is out of range (checked with one device sync).</exception>
    public void Add(Tensor indices)
    {
        if (indices.dim() != 3 || indices.shape[1] != Shape.NumCodebooks)
        {
            throw new ArgumentException($"Expected indices (B, {Shape.NumCodebooks}, L), got [{string.Join(", ", indices.shape)}]", nameof(indices));
        }
        using var scope = NewDisposeScope();
        var ids = indices.to(int64);
        if (ids.lt(0).logical_or(ids.ge(Shape.CodebookSize)).any().item<bool>())
        {
            throw new ArgumentException($"Token ids must lie in [0, {Shape.CodebookSize}) for {Shape}; got [{ids.min().item<long>()}, {ids.max().item<long>()}]", nameof(indices));
        }
        counts.add_(bincount((ids + offsets).flatten(), minlength: Shape.VocabularySize));
    }

    /// <summary>The counts so far, on the host.</summary>
    public CodebookUsage ToUsage()
    {
        using var scope = NewDisposeScope();
        return new CodebookUsage(Shape, counts.cpu().data<long>().ToArray());
    }

    public void Dispose()
    {
        counts.Dispose();
        offsets.Dispose();
    }
}
