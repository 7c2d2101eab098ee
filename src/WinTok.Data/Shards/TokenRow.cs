namespace WinTok.Data.Shards;

/// <summary>
/// One row of a token shard: one image's tokens and where they came from. Array lengths must match the dataset's
/// <see cref="TokenLayout"/>; <see cref="ShardWriter.Add"/> checks them.
/// </summary>
/// <param name="Key">Sample key; rows are sorted by it and it is unique within a shard.</param>
/// <param name="SourceUri">Path or blob URI of the original, plus <c>#member</c> for tar members.</param>
/// <param name="SourceSha256">SHA-256 of the original bytes (32 bytes).</param>
/// <param name="OrigWidth">Width of the decoded original, before preprocessing.</param>
/// <param name="OrigHeight">Height of the decoded original.</param>
/// <param name="Label">Class index, if the corpus has labels.</param>
/// <param name="Caption">Caption, if the corpus has one.</param>
/// <param name="PixelTokens">K · L ids, codebook-major.</param>
/// <param name="SemanticTokens">N · D bfloat16 bit patterns, row-major, when the layout has semantic tokens.</param>
/// <param name="SemanticPooled">D bfloat16 bit patterns, when the layout has the pooled vector.</param>
public sealed record TokenRow(
    string Key,
    string SourceUri,
    byte[] SourceSha256,
    int OrigWidth,
    int OrigHeight,
    int? Label,
    string? Caption,
    ushort[] PixelTokens,
    short[]? SemanticTokens = null,
    short[]? SemanticPooled = null)
{
    /// <summary>
    /// Global row id, assigned when the shard is written: <c>partition · 2^32 + index of the row in key order</c>.
    /// Ignored by <see cref="ShardWriter.Add"/>.
    /// </summary>
    public long RowId { get; init; }
}
