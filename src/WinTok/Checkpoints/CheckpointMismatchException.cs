using System.Text;

namespace WinTok.Checkpoints;

/// <summary>A tensor whose shape in the checkpoint differs from the module's.</summary>
/// <param name="Name">The state_dict key.</param>
/// <param name="Expected">The module's shape.</param>
/// <param name="Actual">The checkpoint's shape.</param>
public sealed record MisshapedTensor(string Name, long[] Expected, long[] Actual)
{
    public override string ToString() => $"{Name}: module expects [{string.Join(", ", Expected)}], checkpoint has [{string.Join(", ", Actual)}]";
}

/// <summary>
/// A state_dict that does not fit a module under strict loading. The message lists every missing, unexpected
/// and misshaped name (up to <see cref="MaxListed"/> of each, with counts); the properties hold the full lists.
/// </summary>
public sealed class CheckpointMismatchException : Exception
{
    /// <summary>How many names of each kind the message lists before summarising the rest.</summary>
    public const int MaxListed = 25;

    public CheckpointMismatchException(IReadOnlyList<string> missing, IReadOnlyList<string> unexpected, IReadOnlyList<MisshapedTensor> misshaped)
        : base(Describe(missing, unexpected, misshaped))
    {
        Missing = missing;
        Unexpected = unexpected;
        Misshaped = misshaped;
    }

    /// <summary>Keys the module has and the checkpoint lacks.</summary>
    public IReadOnlyList<string> Missing { get; }

    /// <summary>Keys the checkpoint has and the module lacks.</summary>
    public IReadOnlyList<string> Unexpected { get; }

    /// <summary>Keys both have, with different shapes.</summary>
    public IReadOnlyList<MisshapedTensor> Misshaped { get; }

    private static string Describe(IReadOnlyList<string> missing, IReadOnlyList<string> unexpected, IReadOnlyList<MisshapedTensor> misshaped)
    {
        var text = new StringBuilder(
            $"The checkpoint does not match the module: {missing.Count} missing, {unexpected.Count} unexpected, {misshaped.Count} misshaped.");
        Append(text, "Missing (in the module, not in the checkpoint)", missing);
        Append(text, "Unexpected (in the checkpoint, not in the module)", unexpected);
        Append(text, "Misshaped", misshaped.Select(m => m.ToString()).ToList());
        return text.ToString();
    }

    private static void Append(StringBuilder text, string title, IReadOnlyList<string> names)
    {
        if (names.Count == 0)
        {
            return;
        }
        text.Append('\n').Append(title).Append(" (").Append(names.Count).Append("):");
        foreach (string name in names.Take(MaxListed))
        {
            text.Append("\n  ").Append(name);
        }
        if (names.Count > MaxListed)
        {
            text.Append("\n  ... and ").Append(names.Count - MaxListed).Append(" more");
        }
    }
}
