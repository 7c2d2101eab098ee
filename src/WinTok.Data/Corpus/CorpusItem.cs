using System.Security.Cryptography;

namespace WinTok.Data.Corpus;

/// <summary>
/// One item read from a corpus partition: either a <see cref="CorpusSample"/> to tokenize or a
/// <see cref="FailureRecord"/> saying why an input could not be used. Reading never throws for a single bad input.
/// </summary>
/// <param name="Key">Stable sample key: the relative path for folders, the WebDataset key for tars.</param>
/// <param name="Source">Where the input came from: a file path or blob URI, plus <c>#member</c> for tar members.</param>
public abstract record CorpusItem(string Key, string Source);

/// <summary>A sample whose bytes were read; decoding happens later and may still fail.</summary>
/// <param name="Key">Stable sample key.</param>
/// <param name="Source">File path or blob URI, plus <c>#member</c> for the image member of a tar.</param>
/// <param name="Bytes">The encoded image, exactly as stored.</param>
/// <param name="Label">Class index (ImageFolder: index of the sorted class name; WebDataset: the <c>.cls</c> member).</param>
/// <param name="ClassName">ImageFolder class folder name, if any.</param>
/// <param name="Caption">WebDataset <c>.txt</c> member, if any.</param>
/// <param name="Json">WebDataset <c>.json</c> member, verbatim, if any.</param>
public sealed record CorpusSample(
    string Key,
    string Source,
    byte[] Bytes,
    int? Label = null,
    string? ClassName = null,
    string? Caption = null,
    string? Json = null) : CorpusItem(Key, Source)
{
    /// <summary>SHA-256 of <see cref="Bytes"/>, the <c>source_sha256</c> column of a token shard.</summary>
    public byte[] ComputeSha256() => SHA256.HashData(Bytes);
}

/// <summary>
/// An input that was rejected: unreadable, vanished, not an image, undecodable. Anyone in the pipeline may create
/// one (the corpus reader, the decoder, the tokenizer); <c>ShardWriter.AddFailure</c> stores it next to the shard.
/// </summary>
/// <param name="Key">Sample key, or the best available name when no key could be derived.</param>
/// <param name="Source">File path or blob URI, plus <c>#member</c> for tar members.</param>
/// <param name="Reason">Short human-readable reason, e.g. "tar member is not an image (.npy)".</param>
/// <param name="ExceptionType">Full name of the exception that caused it, if one did.</param>
/// <param name="BytesSha256">SHA-256 of the input bytes, when any were read (lower-case hex).</param>
public sealed record FailureRecord(
    string Key,
    string Source,
    string Reason,
    string? ExceptionType = null,
    string? BytesSha256 = null) : CorpusItem(Key, Source)
{
    /// <summary>Builds a failure from an exception, hashing the bytes that were read, if any.</summary>
    public static FailureRecord FromException(string key, string source, string reason, Exception exception, ReadOnlySpan<byte> bytes = default) =>
        new(key, source, $"{reason}: {exception.Message}", exception.GetType().FullName, bytes.IsEmpty ? null : Sha256Hex(bytes));

    /// <summary>Lower-case hex SHA-256, the form used in failure records and manifests.</summary>
    public static string Sha256Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}
