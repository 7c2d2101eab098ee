using WinTok.Data.Images;

namespace WinTok.Data.Training;

/// <summary>
/// A small deterministic random source (SplitMix64, Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014) for everything the training data draws: the order of partitions and samples and each
/// sample's crop. Written out rather than <see cref="Random"/> so that a run's data order is fixed by its seed on every
/// machine and .NET version, which resuming a run relies on.
/// </summary>
public sealed class SampleRandom(ulong seed) : ICropDraws
{
    private ulong state = seed;

    /// <summary>A seed derived from <paramref name="seed"/> and a path of integers (epoch, partition, sample, ...).</summary>
    public static ulong Derive(ulong seed, params ReadOnlySpan<long> path)
    {
        var mixed = Finalize(seed ^ 0x6A09E667F3BCC908UL);
        foreach (var part in path) mixed = Finalize(mixed ^ Finalize((ulong)part + 0x9E3779B97F4A7C15UL));
        return mixed;
    }

    public ulong NextUInt64()
    {
        state += 0x9E3779B97F4A7C15UL;
        return Finalize(state);
    }

    /// <summary>An integer uniform in [0, <paramref name="exclusiveMax"/>), without modulo bias (Lemire's method).</summary>
    public int Integer(int exclusiveMax)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(exclusiveMax, 1);
        var bound = (ulong)exclusiveMax;
        var threshold = (0UL - bound) % bound;
        while (true)
        {
            var product = Math.BigMul(NextUInt64(), bound, out var low);
            if (low >= threshold) return (int)product;
        }
    }

    /// <summary>A float32 uniform in [<paramref name="low"/>, <paramref name="high"/>): 24 random bits, as torch's CPU uniform_ takes.</summary>
    public float Uniform(float low, float high)
    {
        var unit = (NextUInt64() >> 40) * (1.0f / (1 << 24));
        var value = low + (high - low) * unit;
        return value < high ? value : low; // rounding can reach high when the range is tiny
    }

    /// <summary>Fisher-Yates shuffle of <paramref name="items"/> in place.</summary>
    public void Shuffle<T>(IList<T> items)
    {
        for (var i = items.Count - 1; i > 0; i--)
        {
            var j = Integer(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    private static ulong Finalize(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
