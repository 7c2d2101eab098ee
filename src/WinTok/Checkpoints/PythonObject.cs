namespace WinTok.Checkpoints;

/// <summary>
/// Placeholder for a pickled Python object of a class this reader does not model (an enum, a path, a config
/// object in <c>args</c>). It keeps what the pickle said about it, so nothing is silently dropped.
/// </summary>
/// <param name="TypeName">The qualified Python name, for example <c>pathlib.PurePosixPath</c>.</param>
/// <param name="Arguments">The constructor arguments the pickle passed (already converted).</param>
/// <param name="State">The state set through <c>__setstate__</c>/<c>BUILD</c>, or null.</param>
public sealed record PythonObject(string TypeName, IReadOnlyList<object?> Arguments, object? State)
{
    public override string ToString() => $"<{TypeName} object>";
}
