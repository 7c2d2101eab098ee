namespace WinTok.Training;

/// <summary>
/// The deterministic "formula" weights of the reference fixtures and of <c>wintok sample</c> (tests/fixtures/README.md,
/// tests/fixtures/training/README.md): for the tensor at position k of its list, element i uses
/// <c>s = sin(0.1 + 0.37 (i mod 10007) + 1.7 k)</c> in float64, then a rule of s (and the tensor's fan-in), then
/// float32. Networks built from them run without weight files and give the numbers the fixtures recorded.
/// </summary>
public static class FormulaWeights
{
    private const int Period = 10007;

    /// <summary>
    /// The values of a tensor of <paramref name="shape"/> at position <paramref name="k"/>: <paramref name="rule"/>(s,
    /// fan_in) per element, fan_in being the elements per output row for tensors of two or more dimensions (0 otherwise).
    /// </summary>
    public static float[] Values(long[] shape, int k, Func<double, long, double> rule)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(rule);
        var count = shape.Aggregate(1L, (product, size) => product * size);
        var fanIn = shape.Length >= 2 ? count / shape[0] : 0;
        // s repeats with period 10007 in i: one period per tensor is computed, then tiled.
        var period = new float[Math.Min(count, Period)];
        for (var i = 0; i < period.Length; i++)
            period[i] = (float)rule(Math.Sin(0.1 + 0.37 * i + 1.7 * k), fanIn);
        var values = new float[count];
        for (long i = 0; i < count; i += period.Length)
            Array.Copy(period, 0, values, i, Math.Min(period.Length, count - i));
        return values;
    }

    /// <summary>The values by one of the rules the fixtures' tables name (see <see cref="Rule"/>).</summary>
    public static float[] Values(long[] shape, int k, string rule) => Values(shape, k, Rule(rule));

    /// <summary>
    /// A rule as the fixtures' tables write it: <c>0.5*s</c>, <c>1+0.1*s</c>, <c>0.05*s</c>, <c>s*sqrt(3/fan_in)</c>,
    /// <c>|s*sqrt(3/fan_in)|</c>.
    /// </summary>
    /// <exception cref="InvalidDataException">Any other rule, named.</exception>
    public static Func<double, long, double> Rule(string rule) => rule switch
    {
        "0.5*s" => (s, _) => 0.5 * s,
        "1+0.1*s" => (s, _) => 1 + 0.1 * s,
        "0.05*s" => (s, _) => 0.05 * s,
        "s*sqrt(3/fan_in)" => (s, fanIn) => s * Math.Sqrt(3.0 / fanIn),
        "|s*sqrt(3/fan_in)|" => (s, fanIn) => Math.Abs(s * Math.Sqrt(3.0 / fanIn)),
        _ => throw new InvalidDataException($"Unknown formula weight rule '{rule}'"),
    };
}
