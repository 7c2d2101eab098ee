using System.Buffers.Binary;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Evaluation;

// Sufficient statistics for the Frechet distance of WinTok's evaluation (examples/eval_tokenizer/eval_metrics_ddp.py
// @ eb0452e gathers every Inception feature and calls np.mean(0) and np.cov(rowvar=False)): the count, the sum and the
// sum of outer products, in float64. Partitions accumulate them on their device and merge them on the host, so a
// run of any size needs neither the features nor a gather.
//
// Order of summation: float64 sums depend on the order of their terms, so statistics merged from differently split
// partitions agree with a single pass to about 1e-16 relative per entry, not bit for bit (the products of float32
// features are exact in float64, but their sums are not, and making them exact would need ~100-bit fixed point).
// FeatureStatisticsTests bounds the effect on the Frechet distance.

/// <summary>
/// Count, sum and sum of outer products (float64) of a set of feature vectors: mergeable across partitions, with a
/// compact binary form. Mean and covariance are those of <c>np.mean(axis=0)</c> and <c>np.cov(rowvar=False)</c> (N − 1).
/// </summary>
public sealed class FeatureStatistics
{
    private const uint Magic = 0x53465457; // "WTFS" little-endian
    private const int FormatVersion = 1;

    private readonly double[] sum;
    private readonly double[] products; // upper triangle of Σ x xᵀ, rows packed: (0,0..d-1), (1,1..d-1), ...

    /// <summary>Empty statistics of <paramref name="dimension"/>-wide features.</summary>
    public FeatureStatistics(int dimension)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimension);
        Dimension = dimension;
        sum = new double[dimension];
        products = new double[PackedLength(dimension)];
    }

    private FeatureStatistics(int dimension, double count, double[] sum, double[] products)
    {
        Dimension = dimension;
        Count = count;
        this.sum = sum;
        this.products = products;
    }

    /// <summary>Width of the feature vectors.</summary>
    public int Dimension { get; }

    /// <summary>How many feature vectors were added (a float64, like the other sums; exact below 2^53).</summary>
    public double Count { get; private set; }

    /// <summary>The statistics of <paramref name="features"/> (N, d), computed on their device.</summary>
    public static FeatureStatistics Of(Tensor features)
    {
        if (features.dim() != 2)
        {
            throw new ArgumentException($"Features must be (N, d), got [{string.Join(", ", features.shape)}]", nameof(features));
        }
        using var accumulator = new FeatureAccumulator((int)features.shape[1], features.device);
        accumulator.Add(features);
        return accumulator.ToStatistics();
    }

    /// <summary>Adds <paramref name="other"/>'s count and sums to these (float64 additions, entry by entry).</summary>
    public void Merge(FeatureStatistics other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Dimension != Dimension)
        {
            throw new ArgumentException($"Cannot merge statistics of {other.Dimension}-d features into {Dimension}-d ones", nameof(other));
        }
        Count += other.Count;
        for (int i = 0; i < sum.Length; i++)
        {
            sum[i] += other.sum[i];
        }
        for (int i = 0; i < products.Length; i++)
        {
            products[i] += other.products[i];
        }
    }

    /// <summary>
    /// Mean (d) and N − 1 covariance (d, d) in float64 on <paramref name="device"/> (CPU by default):
    /// Σ = (Σ x xᵀ − s sᵀ / N) / (N − 1) with s = Σ x.
    /// </summary>
    public (Tensor Mean, Tensor Covariance) MeanAndCovariance(Device? device = null)
    {
        if (Count < 2)
        {
            throw new InvalidOperationException($"A covariance needs at least 2 feature vectors; these statistics hold {Count}");
        }
        using var scope = NewDisposeScope();
        var total = tensor(sum, float64, device);                               // (d)
        var mean = total / Count;
        var covariance = (Unpack(products, Dimension, device) - outer(total, total).div(Count)).div(Count - 1);
        return (mean.MoveToOuterDisposeScope(), covariance.MoveToOuterDisposeScope());
    }

    /// <summary>Writes the statistics exactly: "WTFS", version, dimension, count, sum, upper triangle (little-endian float64).</summary>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> header = stackalloc byte[20];
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], Dimension);
        BinaryPrimitives.WriteDoubleLittleEndian(header[12..], Count);
        stream.Write(header);
        WriteDoubles(stream, sum);
        WriteDoubles(stream, products);
    }

    /// <summary>Reads statistics written by <see cref="WriteTo"/>.</summary>
    /// <exception cref="InvalidDataException">The stream does not hold feature statistics, or ends early.</exception>
    public static FeatureStatistics ReadFrom(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> header = stackalloc byte[20];
        ReadExactly(stream, header, "header");
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic)
        {
            throw new InvalidDataException("Not WinTok feature statistics: the data does not start with 'WTFS'");
        }
        int version = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
        if (version != FormatVersion)
        {
            throw new InvalidDataException($"Feature statistics of format version {version}; this build reads version {FormatVersion}");
        }
        int dimension = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        if (dimension <= 0 || PackedLength(dimension) > Array.MaxLength)
        {
            throw new InvalidDataException($"Feature statistics with an impossible dimension {dimension}");
        }
        double count = BinaryPrimitives.ReadDoubleLittleEndian(header[12..]);
        var sum = ReadDoubles(stream, dimension, "sum");
        var products = ReadDoubles(stream, (int)PackedLength(dimension), "sum of outer products");
        return new FeatureStatistics(dimension, count, sum, products);
    }

    /// <summary>True when both hold exactly the same bits.</summary>
    public bool BitwiseEquals(FeatureStatistics other) =>
        other.Dimension == Dimension && BitConverter.DoubleToInt64Bits(other.Count) == BitConverter.DoubleToInt64Bits(Count)
        && MemoryMarshal.AsBytes(sum.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(other.sum.AsSpan()))
        && MemoryMarshal.AsBytes(products.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(other.products.AsSpan()));

    /// <summary>Adds a batch's count, sum (d) and symmetric Σ x xᵀ (d, d), all float64 CPU tensors.</summary>
    internal void Add(double count, Tensor batchSum, Tensor batchProducts)
    {
        Count += count;
        var batchSumValues = batchSum.data<double>();
        for (int i = 0; i < sum.Length; i++)
        {
            sum[i] += batchSumValues[i];
        }
        using var packed = Pack(batchProducts);
        var packedValues = packed.data<double>();
        for (int i = 0; i < products.Length; i++)
        {
            products[i] += packedValues[i];
        }
    }

    internal static long PackedLength(long dimension) => dimension * (dimension + 1) / 2;

    /// <summary>The upper triangle of a (d, d) float64 CPU tensor, rows packed.</summary>
    private static Tensor Pack(Tensor matrix)
    {
        using var scope = NewDisposeScope();
        long d = matrix.shape[0];
        var upper = triu_indices(d, d, device: matrix.device);                  // (2, d(d+1)/2), row-major order
        return matrix.index([upper[0], upper[1]]).contiguous().MoveToOuterDisposeScope();
    }

    private static Tensor Unpack(double[] packed, int d, Device? device)
    {
        using var scope = NewDisposeScope();
        var upper = triu_indices(d, d, device: device);
        var matrix = zeros([d, d], float64, device);
        var values = tensor(packed, float64, device);
        matrix.index_put_(values, [upper[0], upper[1]]);
        matrix.index_put_(values, [upper[1], upper[0]]);
        return matrix.MoveToOuterDisposeScope();
    }

    private static void WriteDoubles(Stream stream, double[] values)
    {
        if (BitConverter.IsLittleEndian)
        {
            stream.Write(MemoryMarshal.AsBytes(values.AsSpan()));
            return;
        }
        Span<byte> bytes = stackalloc byte[8];
        foreach (double value in values)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(bytes, value);
            stream.Write(bytes);
        }
    }

    private static double[] ReadDoubles(Stream stream, int count, string what)
    {
        var values = new double[count];
        ReadExactly(stream, MemoryMarshal.AsBytes(values.AsSpan()), what);
        if (!BitConverter.IsLittleEndian)
        {
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = BitConverter.Int64BitsToDouble(BinaryPrimitives.ReverseEndianness(BitConverter.DoubleToInt64Bits(values[i])));
            }
        }
        return values;
    }

    private static void ReadExactly(Stream stream, Span<byte> buffer, string what)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"Feature statistics end inside their {what} (truncated)", e);
        }
    }
}

/// <summary>
/// Accumulates <see cref="FeatureStatistics"/> on the features' device, batch by batch, without leaving it: one float64
/// GEMM per batch. <see cref="ToStatistics"/> copies the sums to the host once.
/// </summary>
public sealed class FeatureAccumulator : IDisposable
{
    private readonly Tensor sum;      // (d) float64
    private readonly Tensor products; // (d, d) float64, symmetric
    private long count;

    public FeatureAccumulator(int dimension, Device device)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimension);
        Dimension = dimension;
        sum = zeros([dimension], float64, device).DetachFromDisposeScope();
        products = zeros([dimension, dimension], float64, device).DetachFromDisposeScope();
    }

    public int Dimension { get; }

    /// <summary>Adds a batch of features (N, d), any floating dtype, on the accumulator's device.</summary>
    public void Add(Tensor features)
    {
        if (features.dim() != 2 || features.shape[1] != Dimension)
        {
            throw new ArgumentException($"Expected features (N, {Dimension}), got [{string.Join(", ", features.shape)}]", nameof(features));
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = features.to(float64);
        var gram = x.t().matmul(x);                                              // (d, d)
        // A GEMM need not give (i, j) and (j, i) the same rounding; the mean of the two does, and is what gets stored.
        products.add_(gram.add(gram.t()).div(2));
        sum.add_(x.sum(dim: 0)); // named: a bare 0 would bind to sum(ScalarType)
        count += features.shape[0];
    }

    /// <summary>The statistics so far, copied to the host.</summary>
    public FeatureStatistics ToStatistics()
    {
        using var scope = NewDisposeScope();
        var statistics = new FeatureStatistics(Dimension);
        statistics.Add(count, sum.cpu(), products.cpu());
        return statistics;
    }

    public void Dispose()
    {
        sum.Dispose();
        products.Dispose();
    }
}
