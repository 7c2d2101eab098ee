namespace WinTok.Checkpoints;

/// <summary>
/// A checkpoint file that cannot be read: truncated, not a checkpoint, or using a feature this reader does not
/// support. The message names the file and what is wrong with it.
/// </summary>
public sealed class CheckpointFormatException : Exception
{
    public CheckpointFormatException(string path, string problem)
        : base($"Cannot read checkpoint '{path}': {problem}")
    {
        FilePath = path;
        Problem = problem;
    }

    public CheckpointFormatException(string path, string problem, Exception innerException)
        : base($"Cannot read checkpoint '{path}': {problem}", innerException)
    {
        FilePath = path;
        Problem = problem;
    }

    /// <summary>The file that could not be read.</summary>
    public string FilePath { get; }

    /// <summary>What is wrong with it, without the file name.</summary>
    public string Problem { get; }
}
