using System.Text.Json.Serialization;

namespace WinTok.Data.Shards;

/// <summary>
/// Shape of the token columns of a dataset, written to every shard's metadata and to the manifest.
/// <c>pixel_tokens</c> holds <see cref="NumCodebooks"/> × <see cref="Positions"/> ids per row, codebook-major
/// (index = codebook · Positions + position, the reference's <c>img_to_idx</c> (B, K, L) order);
/// <c>semantic_tokens</c> holds <see cref="SemanticTokens"/> × <see cref="SemanticDim"/> bfloat16 bit patterns,
/// row-major (N, D); <c>semantic_pooled</c> holds <see cref="SemanticDim"/> of them.
/// </summary>
/// <param name="NumCodebooks">K, e.g. 4.</param>
/// <param name="CodebookSize">Ids per codebook, e.g. 4096; every pixel token is below it.</param>
/// <param name="Positions">L, e.g. 256 for a 16×16 grid.</param>
/// <param name="Grid">Token grid as "HxW", e.g. "16x16"; H·W = Positions, row-major.</param>
/// <param name="SemanticTokens">N semantic tokens per image; 0 when the column is absent.</param>
/// <param name="SemanticDim">D, e.g. 1152; 0 when neither semantic column is present.</param>
/// <param name="HasPooled">Whether the <c>semantic_pooled</c> column is present.</param>
public sealed record TokenLayout(
    int NumCodebooks,
    int CodebookSize,
    int Positions,
    string Grid,
    int SemanticTokens = 0,
    int SemanticDim = 0,
    bool HasPooled = false)
{
    /// <summary>The dtype of the semantic columns' values: bfloat16 stored as the int16 with the same bits.</summary>
    public string SemanticDtype => "bfloat16";

    /// <summary>Pixel ids per row: K · L.</summary>
    [JsonIgnore]
    public int PixelLength => NumCodebooks * Positions;

    /// <summary>Semantic values per row: N · D.</summary>
    [JsonIgnore]
    public int SemanticLength => SemanticTokens * SemanticDim;

    /// <summary>Throws when the numbers contradict each other, stating what was expected.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(NumCodebooks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(Positions, 1);
        // Ids are stored as uint16.
        ArgumentOutOfRangeException.ThrowIfGreaterThan(CodebookSize, ushort.MaxValue + 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(CodebookSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(SemanticTokens);
        var parts = Grid.Split('x');
        if (parts.Length != 2 || !int.TryParse(parts[0], out var h) || !int.TryParse(parts[1], out var w) || h * w != Positions)
        {
            throw new ArgumentException($"Grid {Grid} must be HxW with H*W = {Positions} positions", nameof(Grid));
        }

        if ((SemanticTokens > 0 || HasPooled) != (SemanticDim > 0))
        {
            throw new ArgumentException($"SemanticDim is {SemanticDim}, but semantic tokens {SemanticTokens} / pooled {HasPooled} say otherwise", nameof(SemanticDim));
        }
    }
}

/// <summary>Conversions between float32 and the bfloat16 bit patterns stored in the semantic columns.</summary>
public static class BFloat16Bits
{
    /// <summary>float32 → bfloat16 bits, round to nearest even (as torch does); NaN stays NaN.</summary>
    public static short FromSingle(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return unchecked((short)((bits >> 16) | 0x40));
        }

        var rounded = bits + 0x7FFF + ((bits >> 16) & 1);
        return unchecked((short)(rounded >> 16));
    }

    /// <summary>bfloat16 bits → float32: the bits are the top half of a float32.</summary>
    public static float ToSingle(short bits) => BitConverter.UInt32BitsToSingle((uint)(ushort)bits << 16);
}
